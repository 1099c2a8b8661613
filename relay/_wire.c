/*
 * relay._wire: the relay's per-packet hot path, compiled.
 *
 * A Writer is one subscriber sender's direct path (see relay/wire.py for the pure-Python twin that
 * defines the behaviour and relay/aiortc_hooks.py for where its inputs come from). For each frame
 * it writes every packet's RTP header (the subscriber's SSRC, payload type, sequence number and
 * timestamp origin, plus the negotiated header-extension block with the frame's abs-send-time)
 * in front of the shared payload, SRTP-protects the packets in place side by side in one buffer
 * through libsrtp's srtp_protect (called through a function pointer taken from pylibsrtp's cffi
 * binding, so nothing here links libsrtp), and hands the frame to the kernel in one sendmmsg: each
 * run of equal-sized packets is one message with UDP generic segmentation offload (UDP_SEGMENT).
 * fanout() does that for a list of writers in one call, so a frame costs the interpreter one call
 * however many subscribers it goes to. A writer given srtp_protect_rtcp and a report interval also
 * sends the sender's RTCP sender report (SR + SDES CNAME, as aiortc's RTCRtpSender._run_rtcp builds
 * it) with a frame when one is due, SRTCP-protected in the same buffer and the same sendmmsg: the
 * relay then has no report task, timer or Python work per subscriber.
 *
 * receive_rtp() is the other direction, for a publisher's packets: srtp_unprotect (through its address, the
 * same way) and the RTP header read, in one call (relay/receive.py).
 *
 * Everything runs on the event loop's thread with the GIL held: the static buffers are not shared.
 * Built by setuptools from pyproject.toml with gcc and the Python headers only.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

#define HISTORY_MAX 1024
#define WIRE_BUFFER (96 * 1024)
#define SRTP_TRAILER (16 + 128) /* pylibsrtp's SRTP_MAX_TRAILER_LEN */
#define GSO_MAX_SEGMENTS 64
#define GSO_MAX_BYTES 65000
#define MAX_PACKETS 512 /* packets in one buffer round: WIRE_BUFFER / smallest packet, bounded */
#define EXT_MAX 256

typedef int (*srtp_protect_fn)(void *ctx, void *rtp_hdr, int *len_ptr);

#include <time.h>

#define CNAME_MAX 255
#define REPORT_MAX (28 + 8 + 2 + CNAME_MAX + 2 + 3) /* SR, SDES header + SSRC, item, end, padding */

static int gso_enabled = 1; /* cleared, for the process, by the first refusal */

static unsigned char wire_buffer[WIRE_BUFFER];
static int packet_offset[MAX_PACKETS];
static int packet_size[MAX_PACKETS];
static struct mmsghdr messages[MAX_PACKETS];
static struct iovec vectors[MAX_PACKETS];
static union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
} controls[MAX_PACKETS];

typedef struct {
    PyObject *payload; /* a reference to the shared payload, NULL if the slot is empty */
    uint16_t sequence;
    uint32_t timestamp;
    uint32_t abs_send_time;
    uint8_t marker;
} HistorySlot;

typedef struct {
    PyObject_HEAD
    int fd; /* a duplicate owned by the writer, -1 once closed */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    srtp_protect_fn protect;
    void *srtp;
    PyObject *keep;  /* keeps the srtp_t (pylibsrtp's Session) alive */
    PyObject *owner; /* whatever the Python side attaches (its outlet) */
    uint32_t ssrc;
    uint8_t payload_type;
    uint16_t sequence;
    uint32_t origin;
    unsigned char extensions[EXT_MAX];
    int extensions_len;
    int abs_send_time_at; /* offset of the 3 abs-send-time bytes in the block, -1: not negotiated */
    int history_size;
    HistorySlot *history;
    /* What aiortc's sender loop would have counted (read lazily, see relay.aiortc_hooks). */
    unsigned long long frames, packets, octets, wire_bytes, ntp_time;
    uint32_t rtp_timestamp;
    /* Sender reports: srtp_protect_rtcp (NULL: none are sent), the CNAME, the mean interval. */
    srtp_protect_fn protect_rtcp;
    unsigned char cname[CNAME_MAX];
    int cname_len;
    unsigned int report_interval_ms;
    unsigned long long next_report; /* NTP time from which the next report is due (0: the first frame) */
    uint32_t report_seed;           /* xorshift32 state for the interval's jitter */
    unsigned long long reports;
    uint32_t lsr;    /* the last report's middle 32 bits of NTP time, as aiortc's __lsr */
    double lsr_time; /* and the wall clock when it was sent, as aiortc's __lsr_time */
} Writer;

static PyTypeObject WriterType;

/* -- building and sending ------------------------------------------------------------------- */

static int write_header(Writer *w, unsigned char *out, int marker, uint16_t sequence, uint32_t timestamp,
                        uint32_t abs_send_time) {
    out[0] = w->extensions_len ? 0x90 : 0x80;
    out[1] = (uint8_t)(w->payload_type | (marker ? 0x80 : 0));
    out[2] = (uint8_t)(sequence >> 8);
    out[3] = (uint8_t)sequence;
    out[4] = (uint8_t)(timestamp >> 24);
    out[5] = (uint8_t)(timestamp >> 16);
    out[6] = (uint8_t)(timestamp >> 8);
    out[7] = (uint8_t)timestamp;
    out[8] = (uint8_t)(w->ssrc >> 24);
    out[9] = (uint8_t)(w->ssrc >> 16);
    out[10] = (uint8_t)(w->ssrc >> 8);
    out[11] = (uint8_t)w->ssrc;
    if (w->extensions_len) {
        memcpy(out + 12, w->extensions, (size_t)w->extensions_len);
        if (w->abs_send_time_at >= 0) {
            unsigned char *at = out + 12 + w->abs_send_time_at;
            at[0] = (uint8_t)(abs_send_time >> 16);
            at[1] = (uint8_t)(abs_send_time >> 8);
            at[2] = (uint8_t)abs_send_time;
        }
    }
    return 12 + w->extensions_len;
}

static void put32(unsigned char *out, uint32_t value) {
    out[0] = (uint8_t)(value >> 24);
    out[1] = (uint8_t)(value >> 16);
    out[2] = (uint8_t)(value >> 8);
    out[3] = (uint8_t)value;
}

/* The sender report aiortc sends (RtcpSrPacket, then RtcpSdesPacket with the CNAME): its length. */
static int write_report(Writer *w, unsigned char *out, unsigned long long ntp, uint32_t timestamp) {
    out[0] = 0x80;
    out[1] = 200;
    out[2] = 0;
    out[3] = 6;
    put32(out + 4, w->ssrc);
    put32(out + 8, (uint32_t)(ntp >> 32));
    put32(out + 12, (uint32_t)ntp);
    put32(out + 16, timestamp);
    put32(out + 20, (uint32_t)w->packets);
    put32(out + 24, (uint32_t)w->octets);
    int n = 28;
    if (w->cname_len > 0) {
        int start = n;
        out[n++] = 0x81;
        out[n++] = 202;
        n += 2;
        put32(out + n, w->ssrc);
        n += 4;
        out[n++] = 1;
        out[n++] = (uint8_t)w->cname_len;
        memcpy(out + n, w->cname, (size_t)w->cname_len);
        n += w->cname_len;
        out[n++] = 0;
        out[n++] = 0;
        while ((n - start) % 4) out[n++] = 0;
        int words = (n - start - 4) / 4;
        out[start + 2] = (uint8_t)(words >> 8);
        out[start + 3] = (uint8_t)words;
    }
    return n;
}

/* NTP time (seconds << 32) until the next report: the mean interval times 0.5..1.5, as aiortc's
 * 0.5 + random(); relay/wire.py's PyWriter draws the same numbers. */
static unsigned long long report_delay(Writer *w) {
    uint32_t x = w->report_seed;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    w->report_seed = x;
    unsigned long long ms = w->report_interval_ms;
    unsigned long long us = ms * 500ULL + ((ms * 1000ULL * (x >> 16)) >> 16);
    return (us << 32) / 1000000ULL;
}

static int gso_refused(int err) {
    return err == EINVAL || err == EIO || err == ENOPROTOOPT || err == EOPNOTSUPP;
}

/* Group packets [0, count) into messages as relay.aiortc_hooks.segment_runs does. */
static int build_messages(Writer *w, int count, int gso) {
    int messages_count = 0, i = 0;
    while (i < count) {
        int start = packet_offset[i], size = packet_size[i];
        int j = i + 1, total = size;
        while (gso && j < count && j - i < GSO_MAX_SEGMENTS && total + packet_size[j] <= GSO_MAX_BYTES) {
            int following = packet_size[j];
            if (following > size) break;
            total += following;
            j++;
            if (following < size) break;
        }
        struct mmsghdr *m = &messages[messages_count];
        memset(m, 0, sizeof(*m));
        vectors[messages_count].iov_base = wire_buffer + start;
        vectors[messages_count].iov_len = (size_t)total;
        m->msg_hdr.msg_name = &w->addr;
        m->msg_hdr.msg_namelen = w->addr_len;
        m->msg_hdr.msg_iov = &vectors[messages_count];
        m->msg_hdr.msg_iovlen = 1;
        if (total != size) {
            struct cmsghdr *c = &controls[messages_count].align;
            m->msg_hdr.msg_control = controls[messages_count].buf;
            m->msg_hdr.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
            c->cmsg_level = SOL_UDP;
            c->cmsg_type = UDP_SEGMENT;
            c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t segment = (uint16_t)size;
            memcpy(CMSG_DATA(c), &segment, sizeof(segment));
        }
        messages_count++;
        i = j;
    }
    return messages_count;
}

/* Send packets [0, count) of the buffer. 1: sent (or lost to a peer error, as a datagram may be),
 * 0: the socket is full (the rest is dropped). */
static int flush(Writer *w, int count) {
    if (count == 0 || w->fd < 0) return 1;
    int gso = gso_enabled;
    int total = build_messages(w, count, gso);
    int sent = 0;
    while (sent < total) {
        int n = sendmmsg(w->fd, messages + sent, (unsigned int)(total - sent), MSG_DONTWAIT);
        if (n > 0) {
            sent += n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (n < 0 && gso && gso_refused(errno) && messages[sent].msg_hdr.msg_control != NULL) {
            /* This kernel or socket refuses GSO: send packet by packet from here on, for the process. */
            gso_enabled = gso = 0;
            int first = 0; /* the first packet of the message that failed */
            char *base = (char *)messages[sent].msg_hdr.msg_iov->iov_base;
            while (first < count && (char *)wire_buffer + packet_offset[first] != base) first++;
            int rest = count - first;
            memmove(packet_offset, packet_offset + first, sizeof(int) * (size_t)rest);
            memmove(packet_size, packet_size + first, sizeof(int) * (size_t)rest);
            count = rest;
            total = build_messages(w, count, 0);
            sent = 0;
            continue;
        }
        /* A peer that went away (ECONNREFUSED from an ICMP error...): consent checks will tell. */
        return 1;
    }
    return 1;
}

/* SRTP- or SRTCP-protect (with fn) the length bytes at wire_buffer + offset in place and add them to the
 * buffer's round of packets: the protected length, -1 on error (exception set). */
static int add_protected(Writer *w, srtp_protect_fn fn, const char *what, int offset, int length, int *in_buffer) {
    int code = fn(w->srtp, wire_buffer + offset, &length);
    if (code) {
        PyErr_Format(PyExc_RuntimeError, "%s failed (%d)", what, code);
        return -1;
    }
    packet_offset[*in_buffer] = offset;
    packet_size[*in_buffer] = length;
    (*in_buffer)++;
    return length;
}

/* Write one frame to one subscriber: 1 sent, 0 socket full, -1 error (exception set). */
static int send_frame(Writer *w, PyObject *payloads, uint32_t pts, unsigned long long ntp) {
    Py_ssize_t count = PyList_GET_SIZE(payloads);
    if (w->fd < 0 || count == 0) return 1;
    uint32_t timestamp = w->origin + pts;
    uint32_t abs_send_time = (uint32_t)((ntp >> 14) & 0x00FFFFFF);
    int header_len = 12 + w->extensions_len;
    int offset = 0, in_buffer = 0, ok = 1;
    long long octets = 0, wire_bytes = 0;
    uint16_t sequence = w->sequence;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *payload = PyList_GET_ITEM(payloads, i);
        char *data;
        Py_ssize_t size;
        if (PyBytes_AsStringAndSize(payload, &data, &size) < 0) return -1;
        int packet_len = header_len + (int)size;
        if (packet_len + SRTP_TRAILER > WIRE_BUFFER) {
            PyErr_SetString(PyExc_ValueError, "RTP packet too large for the wire buffer");
            return -1;
        }
        if (offset + packet_len + SRTP_TRAILER > WIRE_BUFFER || in_buffer == MAX_PACKETS) {
            if (ok && !flush(w, in_buffer)) ok = 0;
            offset = in_buffer = 0;
        }
        int marker = i == count - 1;
        unsigned char *out = wire_buffer + offset;
        write_header(w, out, marker, sequence, timestamp, abs_send_time);
        memcpy(out + header_len, data, (size_t)size);
        HistorySlot *slot = &w->history[sequence % w->history_size];
        Py_INCREF(payload);
        Py_XSETREF(slot->payload, payload);
        slot->sequence = sequence;
        slot->timestamp = timestamp;
        slot->abs_send_time = abs_send_time;
        slot->marker = (uint8_t)marker;
        int length = add_protected(w, w->protect, "srtp_protect", offset, packet_len, &in_buffer);
        if (length < 0) return -1;
        offset += length;
        octets += size;
        wire_bytes += length; /* as aiortc counts: the protected packet */
        sequence = (uint16_t)(sequence + 1);
    }
    w->sequence = sequence;
    w->frames++;
    w->packets += (unsigned long long)count;
    w->octets += (unsigned long long)octets;
    w->wire_bytes += (unsigned long long)wire_bytes;
    w->ntp_time = ntp;
    w->rtp_timestamp = timestamp;
    if (w->protect_rtcp != NULL && ntp >= w->next_report) {
        if (offset + REPORT_MAX + SRTP_TRAILER > WIRE_BUFFER || in_buffer == MAX_PACKETS) {
            if (ok && !flush(w, in_buffer)) ok = 0;
            offset = in_buffer = 0;
        }
        int length = write_report(w, wire_buffer + offset, ntp, timestamp);
        length = add_protected(w, w->protect_rtcp, "srtp_protect_rtcp", offset, length, &in_buffer);
        if (length < 0) return -1;
        w->wire_bytes += (unsigned long long)length;
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        w->reports++;
        w->lsr = (uint32_t)(ntp >> 16);
        w->lsr_time = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
        w->next_report = ntp + report_delay(w);
    }
    if (ok && !flush(w, in_buffer)) ok = 0;
    return ok;
}

/* -- the Writer type ------------------------------------------------------------------------ */

static int parse_address(PyObject *addr, struct sockaddr_storage *out, socklen_t *out_len) {
    const char *host;
    int port;
    unsigned int flowinfo = 0, scope_id = 0;
    if (!PyArg_ParseTuple(addr, "si|II", &host, &port, &flowinfo, &scope_id)) return -1;
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *out_len = sizeof(*v4);
        return 0;
    }
    char plain[INET6_ADDRSTRLEN + 1];
    const char *percent = strchr(host, '%');
    if (percent != NULL && (size_t)(percent - host) < sizeof(plain)) {
        memcpy(plain, host, (size_t)(percent - host));
        plain[percent - host] = 0;
        host = plain;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        v6->sin6_flowinfo = htonl(flowinfo);
        v6->sin6_scope_id = scope_id;
        *out_len = sizeof(*v6);
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "not an IP address: %s", host);
    return -1;
}

static int Writer_init(Writer *self, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"fd", "addr", "protect", "srtp", "keep", "ssrc", "payload_type", "sequence", "origin",
                            "extensions", "abs_send_time_at", "history_size", "protect_rtcp", "cname",
                            "report_interval_ms", NULL};
    int fd, abs_send_time_at = -1, history_size = 128, payload_type;
    unsigned long long protect, srtp, protect_rtcp = 0;
    unsigned long ssrc, origin;
    unsigned int sequence, report_interval_ms = 0;
    PyObject *addr, *keep;
    Py_buffer extensions = {0}, cname = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iOKKOkiIky*|iiKy*I", names, &fd, &addr, &protect, &srtp, &keep,
                                     &ssrc, &payload_type, &sequence, &origin, &extensions, &abs_send_time_at,
                                     &history_size, &protect_rtcp, &cname, &report_interval_ms))
        return -1;
    int failed = 0;
    if (extensions.len > EXT_MAX || abs_send_time_at + 3 > extensions.len || history_size < 1 ||
        history_size > HISTORY_MAX || payload_type < 0 || payload_type > 127 || protect == 0 || srtp == 0 ||
        cname.len > CNAME_MAX || (protect_rtcp != 0 && report_interval_ms == 0)) {
        PyErr_SetString(PyExc_ValueError, "bad writer parameters");
        failed = 1;
    } else if (parse_address(addr, &self->addr, &self->addr_len) < 0) {
        failed = 1;
    }
    if (!failed) {
        memcpy(self->extensions, extensions.buf, (size_t)extensions.len);
        self->extensions_len = (int)extensions.len;
        if (cname.len > 0) memcpy(self->cname, cname.buf, (size_t)cname.len);
        self->cname_len = (int)cname.len;
    }
    PyBuffer_Release(&extensions);
    if (cname.obj != NULL) PyBuffer_Release(&cname);
    if (failed) return -1;
    self->history = PyMem_Calloc((size_t)history_size, sizeof(HistorySlot));
    if (self->history == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->fd = dup(fd);
    if (self->fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    self->abs_send_time_at = abs_send_time_at;
    self->history_size = history_size;
    self->protect = (srtp_protect_fn)(uintptr_t)protect;
    self->srtp = (void *)(uintptr_t)srtp;
    self->ssrc = (uint32_t)ssrc;
    self->payload_type = (uint8_t)payload_type;
    self->sequence = (uint16_t)sequence;
    self->origin = (uint32_t)origin;
    self->protect_rtcp = (srtp_protect_fn)(uintptr_t)protect_rtcp;
    self->report_interval_ms = report_interval_ms;
    self->report_seed = (uint32_t)ssrc ^ 0x9E3779B9u;
    if (self->report_seed == 0) self->report_seed = 1;
    Py_INCREF(keep);
    Py_XSETREF(self->keep, keep);
    return 0;
}

static PyObject *Writer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    Writer *self = (Writer *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->fd = -1;
        self->abs_send_time_at = -1;
        Py_INCREF(Py_None);
        self->owner = Py_None;
    }
    return (PyObject *)self;
}

static void writer_close(Writer *self) {
    if (self->fd >= 0) {
        close(self->fd);
        self->fd = -1;
    }
}

static int Writer_traverse(Writer *self, visitproc visit, void *arg) {
    Py_VISIT(self->keep);
    Py_VISIT(self->owner);
    return 0;
}

static int Writer_clear(Writer *self) {
    Py_CLEAR(self->keep);
    Py_CLEAR(self->owner);
    if (self->history != NULL) {
        for (int i = 0; i < self->history_size; i++) Py_CLEAR(self->history[i].payload);
    }
    return 0;
}

static void Writer_dealloc(Writer *self) {
    PyObject_GC_UnTrack(self);
    writer_close(self);
    Writer_clear(self);
    PyMem_Free(self->history);
    self->history = NULL;
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Writer_send(Writer *self, PyObject *args) {
    PyObject *payloads;
    unsigned long long pts, ntp;
    if (!PyArg_ParseTuple(args, "O!KK", &PyList_Type, &payloads, &pts, &ntp)) return NULL;
    int result = send_frame(self, payloads, (uint32_t)pts, ntp);
    if (result < 0) return NULL;
    return PyBool_FromLong(result);
}

static PyObject *Writer_packet(Writer *self, PyObject *args) {
    int key;
    if (!PyArg_ParseTuple(args, "i", &key)) return NULL;
    if (key < 0 || key >= self->history_size || self->history[key].payload == NULL) Py_RETURN_NONE;
    HistorySlot *slot = &self->history[key];
    char *data;
    Py_ssize_t size;
    if (PyBytes_AsStringAndSize(slot->payload, &data, &size) < 0) return NULL;
    int header_len = 12 + self->extensions_len;
    PyObject *packet = PyBytes_FromStringAndSize(NULL, header_len + size);
    if (packet == NULL) return NULL;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(packet);
    write_header(self, out, slot->marker, slot->sequence, slot->timestamp, slot->abs_send_time);
    memcpy(out + header_len, data, (size_t)size);
    return packet;
}

static PyObject *Writer_close(Writer *self, PyObject *Py_UNUSED(ignored)) {
    writer_close(self);
    Py_RETURN_NONE;
}

static PyObject *Writer_get_closed(Writer *self, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(self->fd < 0);
}

static PyObject *Writer_get_counts(Writer *self, void *Py_UNUSED(closure)) {
    return Py_BuildValue("(KkKKK)", self->ntp_time, (unsigned long)self->rtp_timestamp, self->octets, self->packets,
                         self->wire_bytes);
}

static PyObject *Writer_get_report(Writer *self, void *Py_UNUSED(closure)) {
    return Py_BuildValue("(Kkd)", self->reports, (unsigned long)self->lsr, self->lsr_time);
}

static PyObject *Writer_get_sequence(Writer *self, void *Py_UNUSED(closure)) {
    return PyLong_FromUnsignedLong(self->sequence);
}

static PyMethodDef Writer_methods[] = {
    {"send", (PyCFunction)Writer_send, METH_VARARGS,
     "send(payloads, pts, ntp_time) -> bool: write one frame; False if the socket was full (frame dropped)"},
    {"packet", (PyCFunction)Writer_packet, METH_VARARGS,
     "packet(sequence % history_size) -> bytes | None: the cleartext RTP packet sent last in that slot"},
    {"close", (PyCFunction)Writer_close, METH_NOARGS, "close the writer's socket; later frames are ignored"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Writer_getset[] = {
    {"closed", (getter)Writer_get_closed, NULL, "whether close() was called", NULL},
    {"sequence", (getter)Writer_get_sequence, NULL, "the next RTP sequence number", NULL},
    {"counts", (getter)Writer_get_counts, NULL,
     "(NTP time, RTP timestamp) of the last frame, payload octets, packets, protected bytes sent", NULL},
    {"report", (getter)Writer_get_report, NULL,
     "(sender reports sent, the last one's LSR, the wall clock it was sent at), as aiortc's __lsr/__lsr_time", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef Writer_members[] = {
    {"owner", T_OBJECT, offsetof(Writer, owner), 0, "the Python object this writer serves"},
    {"frames", T_ULONGLONG, offsetof(Writer, frames), READONLY, "frames written"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "relay._wire.Writer",
    .tp_doc = "One subscriber sender's direct path: RTP headers, SRTP and the socket, compiled.",
    .tp_basicsize = sizeof(Writer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Writer_new,
    .tp_init = (initproc)Writer_init,
    .tp_dealloc = (destructor)Writer_dealloc,
    .tp_traverse = (traverseproc)Writer_traverse,
    .tp_clear = (inquiry)Writer_clear,
    .tp_methods = Writer_methods,
    .tp_getset = Writer_getset,
    .tp_members = Writer_members,
};

/* -- module functions ----------------------------------------------------------------------- */

static PyObject *wire_fanout(PyObject *module, PyObject *args) {
    PyObject *writers, *payloads;
    unsigned long long pts, ntp;
    if (!PyArg_ParseTuple(args, "O!O!KK", &PyList_Type, &writers, &PyList_Type, &payloads, &pts, &ntp))
        return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(payloads); i++) {
        if (!PyBytes_Check(PyList_GET_ITEM(payloads, i))) {
            PyErr_SetString(PyExc_TypeError, "payloads must be bytes");
            return NULL;
        }
    }
    PyObject *full = NULL;
    Py_ssize_t count = PyList_GET_SIZE(writers);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(writers, i);
        if (Py_TYPE(item) != &WriterType) {
            PyErr_SetString(PyExc_TypeError, "fanout() takes a list of Writer");
            Py_XDECREF(full);
            return NULL;
        }
        int result = send_frame((Writer *)item, payloads, (uint32_t)pts, ntp);
        if (result < 0) {
            Py_XDECREF(full);
            return NULL;
        }
        if (result == 0) {
            if (full == NULL && (full = PyList_New(0)) == NULL) return NULL;
            if (PyList_Append(full, item) < 0) {
                Py_DECREF(full);
                return NULL;
            }
        }
    }
    if (full == NULL) return PyList_New(0);
    return full;
}

/* receive_rtp(unprotect, srtp, datagram): a publisher's SRTP packet unprotected (srtp_unprotect through its
 * address, as for srtp_protect) into a static buffer and its RTP header read as aiortc's RtpPacket.parse reads
 * it, less the CSRC list and the header extensions, which nothing on the relay's receiving side reads. Returns
 * (payload_type, marker, sequence_number, timestamp, ssrc, payload, padding_size); libsrtp's status (an int)
 * if unprotecting failed; None if the packet is not RTP as aiortc would parse it. relay/wire.py's
 * python_receive_rtp is its twin. */
#define RECEIVE_MAX 65536
static unsigned char receive_buffer[RECEIVE_MAX + SRTP_TRAILER];

static PyObject *wire_receive_rtp(PyObject *module, PyObject *args) {
    unsigned long long unprotect, srtp;
    Py_buffer datagram;
    if (!PyArg_ParseTuple(args, "KKy*", &unprotect, &srtp, &datagram)) return NULL;
    if (datagram.len < 12 || datagram.len > RECEIVE_MAX) {
        PyBuffer_Release(&datagram);
        Py_RETURN_NONE;
    }
    int length = (int)datagram.len;
    memcpy(receive_buffer, datagram.buf, (size_t)length);
    PyBuffer_Release(&datagram);
    int status = ((srtp_protect_fn)(uintptr_t)unprotect)((void *)(uintptr_t)srtp, receive_buffer, &length);
    if (status != 0) return PyLong_FromLong(status);
    const unsigned char *p = receive_buffer;
    if (length < 12 || (p[0] >> 6) != 2) Py_RETURN_NONE;
    int pos = 12 + 4 * (p[0] & 0x0F);
    if (length < pos) Py_RETURN_NONE;
    if (p[0] & 0x10) {
        if (length < pos + 4) Py_RETURN_NONE;
        pos += 4 + 4 * ((p[pos + 2] << 8) | p[pos + 3]);
        if (length < pos) Py_RETURN_NONE;
    }
    int end = length, padding = 0;
    if (p[0] & 0x20) {
        padding = p[length - 1];
        if (padding == 0 || padding > length - pos) Py_RETURN_NONE;
        end = length - padding;
    }
    unsigned int sequence = ((unsigned int)p[2] << 8) | p[3];
    unsigned long timestamp = ((unsigned long)p[4] << 24) | ((unsigned long)p[5] << 16) | ((unsigned long)p[6] << 8) | p[7];
    unsigned long ssrc = ((unsigned long)p[8] << 24) | ((unsigned long)p[9] << 16) | ((unsigned long)p[10] << 8) | p[11];
    return Py_BuildValue("(iiIkky#i)", p[1] & 0x7F, p[1] >> 7, sequence, timestamp, ssrc,
                         (const char *)(p + pos), (Py_ssize_t)(end - pos), padding);
}

static PyObject *wire_set_gso(PyObject *module, PyObject *arg) {
    int previous = gso_enabled;
    int value = PyObject_IsTrue(arg);
    if (value < 0) return NULL;
    gso_enabled = value;
    return PyBool_FromLong(previous);
}

static PyMethodDef wire_methods[] = {
    {"fanout", wire_fanout, METH_VARARGS,
     "fanout(writers, payloads, pts, ntp_time) -> list: write one frame to every writer; those whose socket "
     "was full"},
    {"receive_rtp", wire_receive_rtp, METH_VARARGS,
     "receive_rtp(unprotect, srtp, datagram) -> (payload_type, marker, sequence_number, timestamp, ssrc, payload, "
     "padding_size) | int | None: SRTP unprotected and the RTP header read (see relay/wire.py)"},
    {"set_gso", wire_set_gso, METH_O, "set_gso(enabled) -> bool: allow UDP GSO (tests); returns the previous value"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef wire_module = {
    PyModuleDef_HEAD_INIT, "relay._wire", "The relay's compiled per-packet path (see relay/wire.py).", -1,
    wire_methods,
};

PyMODINIT_FUNC PyInit__wire(void) {
    if (PyType_Ready(&WriterType) < 0) return NULL;
    PyObject *module = PyModule_Create(&wire_module);
    if (module == NULL) return NULL;
    Py_INCREF(&WriterType);
    if (PyModule_AddObject(module, "Writer", (PyObject *)&WriterType) < 0) {
        Py_DECREF(&WriterType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
