// The client confirms every price it pays: each paid request sends the price the page showed
// (`expectedCents`); when that is no longer the price the server refuses it (409 price_changed, with the
// price now in `priceCents`) and nothing is charged. The page then shows the new price, so the next click
// is the person accepting it.
import { money } from "./format.js";

export const PRICE_CHANGED = "price_changed";

// What to tell the person, in one sentence pattern on every page.
export function priceChangedText(error, { what, per = "", again }) {
  const now = money(error.details.priceCents);
  const was = money(error.details.expectedCents);
  return `The price changed: ${what} now costs ${now}${per} (you saw ${was}${per}). Nothing was charged. ${again}`;
}
