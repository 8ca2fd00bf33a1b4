// The live stream. EventSource cannot send an Authorization header, so the stream is read
// with fetch and its server-sent-event frames are parsed here.
import { authHeaders } from "./api.js";

const SILENCE_LIMIT_MS = 45000; // the router sends a comment every 15 s
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const HEALTHY_AFTER_MS = 10000;

/** Split a text stream into SSE frames: {event, id, data}. Feed it chunks. */
export function frameParser(onFrame) {
  let buffer = "";
  let frame = { event: "message", id: null, data: [] };
  function line(text) {
    if (text === "") {
      if (frame.data.length) {
        onFrame({ event: frame.event, id: frame.id, data: frame.data.join("\n") });
      }
      frame = { event: "message", id: null, data: [] };
      return;
    }
    if (text.startsWith(":")) return; // a comment: keep-alive
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") frame.event = value;
    else if (field === "data") frame.data.push(value);
    else if (field === "id") frame.id = value;
  }
  return (chunk) => {
    buffer += chunk;
    const lines = buffer.split("\n");
    buffer = lines.pop(); // an unfinished line waits for the next chunk
    for (const text of lines) line(text.endsWith("\r") ? text.slice(0, -1) : text);
  };
}

/**
 * Keep a stream open: reconnect with backoff when it ends or fails.
 * handlers: frame({event, id, data}), state("connecting" | "live" | "reconnecting",
 * seconds?), unauthorized().
 */
export function openStream(path, token, handlers) {
  let stopped = false;
  let controller = null;
  let backoff = BACKOFF_MIN_MS;
  let retryTimer = null; // set while waiting to reconnect

  async function connect() {
    if (stopped) return;
    handlers.state("connecting");
    controller = new AbortController();
    let silence = null;
    const watch = () => {
      clearTimeout(silence);
      silence = setTimeout(() => controller.abort(), SILENCE_LIMIT_MS);
    };
    const openedAt = Date.now();
    try {
      watch();
      const response = await fetch(path, {
        headers: { ...authHeaders(token), Accept: "text/event-stream" },
        cache: "no-store",
        signal: controller.signal,
      });
      if (response.status === 401) {
        clearTimeout(silence);
        stopped = true;
        handlers.unauthorized();
        return;
      }
      if (!response.ok || !response.body) throw new Error(`stream answered ${response.status}`);
      handlers.state("live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      const feed = frameParser(handlers.frame);
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        watch();
        feed(value);
      }
    } catch {
      // Network failure, silence or close(): reconnect unless stopped.
    } finally {
      clearTimeout(silence);
    }
    if (stopped) return;
    if (Date.now() - openedAt > HEALTHY_AFTER_MS) backoff = BACKOFF_MIN_MS;
    const wait = backoff * (0.75 + Math.random() / 2);
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    handlers.state("reconnecting", Math.round(wait / 1000));
    retryTimer = setTimeout(() => {
      retryTimer = null;
      connect();
    }, wait);
  }

  connect();
  return {
    close() {
      stopped = true;
      clearTimeout(retryTimer);
      controller?.abort();
    },
    /** Reconnect now if waiting to (the network came back). */
    retry() {
      if (stopped || retryTimer === null) return;
      clearTimeout(retryTimer);
      retryTimer = null;
      backoff = BACKOFF_MIN_MS;
      connect();
    },
  };
}
