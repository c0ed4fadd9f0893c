// DOMException, Event, EventTarget, AbortController and AbortSignal, written here in the isolate (no host object
// behind them): enough of the web platform for `fetch(url, { signal })` and `AbortSignal.timeout(ms)`.
const DOM_CODES = Object.freeze({
  IndexSizeError: 1,
  HierarchyRequestError: 3,
  InvalidCharacterError: 5,
  NotFoundError: 8,
  NotSupportedError: 9,
  InvalidStateError: 11,
  SyntaxError: 12,
  InvalidAccessError: 15,
  TypeMismatchError: 17,
  SecurityError: 18,
  NetworkError: 19,
  AbortError: 20,
  QuotaExceededError: 22,
  TimeoutError: 23,
  DataCloneError: 25,
});

class DOMException extends NativeError {
  constructor(message = '', options = 'Error') {
    super(NativeString(message));
    const named = options !== null && typeof options === 'object';
    const name = NativeString(named ? (options.name ?? 'Error') : options);
    defineProperty(this, 'name', { value: name, writable: true, configurable: true, enumerable: false });
    if (named && 'cause' in options) this.cause = options.cause;
  }
  get code() {
    return DOM_CODES[this.name] ?? 0;
  }
}
for (const [name, code] of Object.entries(DOM_CODES)) {
  const constant = name
    .replace(/Error$/, '')
    .replace(/([a-z])([A-Z])/g, '$1_$2')
    .toUpperCase();
  defineProperty(DOMException, `${constant}_ERR`, { value: code, enumerable: true });
}

let eventStopped;

class Event {
  #type;
  #cancelable;
  #defaultPrevented = false;
  #stopped = false;
  constructor(type, init = {}) {
    if (arguments.length === 0) throw new TypeError('The "type" argument must be specified');
    this.#type = NativeString(type);
    this.#cancelable = Boolean(init?.cancelable);
    this.target = null;
    this.currentTarget = null;
    this.timeStamp = Date.now();
  }
  get type() {
    return this.#type;
  }
  get cancelable() {
    return this.#cancelable;
  }
  get bubbles() {
    return false;
  }
  get defaultPrevented() {
    return this.#defaultPrevented;
  }
  preventDefault() {
    if (this.#cancelable) this.#defaultPrevented = true;
  }
  stopImmediatePropagation() {
    this.#stopped = true;
  }
  stopPropagation() {}
  static {
    eventStopped = (event) => event.#stopped;
  }
}

class EventTarget {
  #listeners = Object.create(null);
  addEventListener(type, listener, options) {
    if (listener === null || listener === undefined) return;
    const key = NativeString(type);
    const once = options !== null && typeof options === 'object' && Boolean(options.once);
    const list = this.#listeners[key] ?? [];
    if (list.some((entry) => entry.listener === listener)) return;
    list.push({ listener, once });
    this.#listeners[key] = list;
  }
  removeEventListener(type, listener) {
    const key = NativeString(type);
    const list = this.#listeners[key];
    if (list) this.#listeners[key] = list.filter((entry) => entry.listener !== listener);
  }
  dispatchEvent(event) {
    if (!(event instanceof Event)) throw new TypeError('The "event" argument must be an instance of Event');
    event.target = this;
    event.currentTarget = this;
    const handler = this[`on${event.type}`];
    const list = [...(typeof handler === 'function' ? [{ listener: handler, once: false }] : [])];
    for (const entry of this.#listeners[event.type] ?? []) list.push(entry);
    for (const entry of list) {
      if (eventStopped(event)) break;
      if (entry.once) this.removeEventListener(event.type, entry.listener);
      try {
        if (typeof entry.listener === 'function') apply(entry.listener, this, [event]);
        else if (entry.listener && typeof entry.listener.handleEvent === 'function') entry.listener.handleEvent(event);
      } catch (e) {
        reportUncaught(`an "${event.type}" event listener`, e);
      }
    }
    event.currentTarget = null;
    return !event.defaultPrevented;
  }
}

// Only the runtime may make an AbortSignal (as in Node, `new AbortSignal()` is an illegal constructor).
const SIGNAL_KEY = Symbol('AbortSignal');
let abortSignal;

class AbortSignal extends EventTarget {
  #aborted = false;
  #reason = undefined;
  constructor(key) {
    if (key !== SIGNAL_KEY) throw new TypeError('Illegal constructor');
    super();
    this.onabort = null;
  }
  get aborted() {
    return this.#aborted;
  }
  get reason() {
    return this.#reason;
  }
  throwIfAborted() {
    if (this.#aborted) throw this.#reason;
  }
  static abort(reason) {
    const signal = new AbortSignal(SIGNAL_KEY);
    abortSignal(signal, reason);
    return signal;
  }
  /** Aborts with a TimeoutError after `ms`; like every timer, it never fires after the run has ended. */
  static timeout(ms) {
    const delay = Number(ms);
    if (!Number.isFinite(delay) || delay < 0) throw new RangeError('The "delay" argument must be a number >= 0');
    const signal = new AbortSignal(SIGNAL_KEY);
    startTimer(
      () => abortSignal(signal, new DOMException('The operation was aborted due to timeout', 'TimeoutError')),
      delay,
    );
    return signal;
  }
  static any(signals) {
    const list = [...signals];
    const signal = new AbortSignal(SIGNAL_KEY);
    for (const source of list) {
      if (!(source instanceof AbortSignal)) throw new TypeError('AbortSignal.any expects AbortSignals');
      if (source.aborted) {
        abortSignal(signal, source.reason);
        return signal;
      }
    }
    for (const source of list) watchAbort(source, () => abortSignal(signal, source.reason));
    return signal;
  }
  static {
    abortSignal = (signal, reason) => {
      if (signal.#aborted) return;
      signal.#aborted = true;
      signal.#reason = reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason;
      signal.dispatchEvent(new Event('abort'));
    };
  }
}

class AbortController {
  #signal = new AbortSignal(SIGNAL_KEY);
  get signal() {
    return this.#signal;
  }
  abort(reason) {
    abortSignal(this.#signal, reason);
  }
}

// The runtime's own listeners go through these, not through methods formula code may replace on a signal.
const addListener = EventTarget.prototype.addEventListener;
const removeListener = EventTarget.prototype.removeEventListener;

/** Calls `onAbort` once when the signal aborts; returns what stops watching. */
function watchAbort(signal, onAbort) {
  const listener = () => onAbort();
  apply(addListener, signal, ['abort', listener, { once: true }]);
  return () => apply(removeListener, signal, ['abort', listener]);
}

G.DOMException = DOMException;
G.Event = Event;
G.EventTarget = EventTarget;
G.AbortController = AbortController;
G.AbortSignal = AbortSignal;
