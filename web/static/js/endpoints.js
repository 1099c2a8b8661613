// The REST paths the pages call, in one place (docs/design.md, the REST contract; the handlers are in api/*/routes.py).
const id = (value) => encodeURIComponent(value);

export const endpoints = {
  rates: "/api/webrtc/reader/rates",
  availability: "/api/webrtc/reader/availability",
  profile: "/api/webrtc/reader/profile",
  readerSessions: "/api/webrtc/reader/sessions",
  earnings: "/api/webrtc/reader/earnings",
  payoutAccount: "/api/payouts/account",
  accept: (sessionId) => `/api/webrtc/reader/accept-session/${id(sessionId)}`,
  decline: (sessionId) => `/api/webrtc/reader/decline-session/${id(sessionId)}`,
  requestSession: "/api/webrtc/client/request-session",
  cancel: (sessionId) => `/api/webrtc/client/cancel-session/${id(sessionId)}`,
  balance: "/api/webrtc/client/balance",
  addFunds: "/api/webrtc/client/add-funds",
  checkout: (checkoutId) => `/api/webrtc/client/checkouts/${id(checkoutId)}`,
  transactions: "/api/webrtc/client/transactions",
  history: "/api/webrtc/sessions",
  session: (sessionId) => `/api/webrtc/session/${id(sessionId)}`,
  transcript: (sessionId) => `/api/webrtc/session/${id(sessionId)}/transcript`,
  end: (sessionId) => `/api/webrtc/session/${id(sessionId)}/end`,
  notifications: "/api/notifications",
  markRead: (notificationId) => `/api/notifications/${id(notificationId)}/read`,
  markAllRead: "/api/notifications/read-all",
};
