// fetch and req.bt are performed by the worker; only the request and response data cross, as JSON.
class Headers {
  #map = Object.create(null);
  constructor(init) {
    if (!init) return;
    if (init instanceof Headers) {
      init.forEach((v, k) => {
        this.append(k, v);
      });
    } else if (typeof init[Symbol.iterator] === 'function') for (const [k, v] of init) this.append(k, v);
    else for (const k of Object.keys(init)) this.append(k, init[k]);
  }
  append(name, value) {
    const k = NativeString(name).toLowerCase();
    this.#map[k] = k in this.#map ? `${this.#map[k]}, ${NativeString(value)}` : NativeString(value);
  }
  set(name, value) {
    this.#map[NativeString(name).toLowerCase()] = NativeString(value);
  }
  get(name) {
    const v = this.#map[NativeString(name).toLowerCase()];
    return v === undefined ? null : v;
  }
  has(name) {
    return NativeString(name).toLowerCase() in this.#map;
  }
  delete(name) {
    delete this.#map[NativeString(name).toLowerCase()];
  }
  forEach(fn, thisArg) {
    for (const k of Object.keys(this.#map).sort()) fn.call(thisArg, this.#map[k], k, this);
  }
  entries() {
    return Object.keys(this.#map)
      .sort()
      .map((k) => [k, this.#map[k]])
      [Symbol.iterator]();
  }
  keys() {
    return Object.keys(this.#map).sort()[Symbol.iterator]();
  }
  [Symbol.iterator]() {
    return this.entries();
  }
}

let responseFromHost;

// The body is held as text or as bytes, whichever it came as; each reader converts only when it must.
class Response {
  #text = null;
  #bytes = null;
  #used = false;
  constructor(body, init = {}) {
    if (body === undefined || body === null) this.#text = '';
    else if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) this.#bytes = toBytes(body).slice();
    else this.#text = NativeString(body);
    this.status = init.status ?? 200;
    this.statusText = init.statusText ?? '';
    this.ok = this.status >= 200 && this.status < 300;
    this.headers = new Headers(init.headers);
    this.url = init.url ?? '';
    this.redirected = Boolean(init.redirected);
  }
  get bodyUsed() {
    return this.#used;
  }
  #read(convert) {
    if (this.#used) return promiseReject(new TypeError('Body has already been consumed'));
    this.#used = true;
    try {
      return promiseResolve(convert(this.#text, this.#bytes));
    } catch (e) {
      return promiseReject(e);
    }
  }
  text() {
    return this.#read((text, bytes) => text ?? utf8Decode(bytes));
  }
  json() {
    return this.#read((text, bytes) => jsonParse(text ?? utf8Decode(bytes)));
  }
  arrayBuffer() {
    return this.#read((text, bytes) => (bytes ? bytes.slice() : utf8Encode(text)).buffer);
  }
  bytes() {
    return this.#read((text, bytes) => (bytes ? bytes.slice() : utf8Encode(text)));
  }
  static {
    // The host sends valid UTF-8 as text and any other body as base64 (fetch.ts), so the bytes arrive exactly.
    responseFromHost = (answer) => {
      const response = new Response(null, answer);
      if (typeof answer.body?.base64 === 'string') {
        response.#text = null;
        response.#bytes = base64Decode(answer.body.base64);
      } else response.#text = NativeString(answer.body?.text ?? '');
      return response;
    };
  }
}

function serialiseBody(body, headers) {
  if (body === undefined || body === null) return null;
  // As Node's fetch: a string body is text/plain unless the formula says otherwise (an upstream may insist on one).
  if (typeof body === 'string') {
    if (!headers.has('content-type')) headers.set('content-type', 'text/plain;charset=UTF-8');
    return { text: body };
  }
  if (body instanceof URLSearchParams) {
    if (!headers.has('content-type')) headers.set('content-type', 'application/x-www-form-urlencoded;charset=UTF-8');
    return { text: body.toString() };
  }
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return { base64: base64Encode(toBytes(body)) };
  return { text: NativeString(body) };
}

G.Headers = Headers;
G.Response = Response;
G.fetch = (input, init = {}) => {
  try {
    const invocationId = current;
    const url =
      input instanceof URL
        ? input.href
        : typeof input === 'object' && input && input.url
          ? NativeString(input.url)
          : NativeString(input);
    const signal = init.signal ?? (input !== null && typeof input === 'object' ? input.signal : undefined);
    if (signal !== undefined && signal !== null && !(signal instanceof AbortSignal)) {
      throw new TypeError('fetch: the signal option must be an AbortSignal');
    }
    if (signal?.aborted) return promiseReject(signal.reason);
    const headers = new Headers(init.headers);
    const request = {
      url,
      method: NativeString(init.method || 'GET').toUpperCase(),
      headers: [],
      body: serialiseBody(init.body, headers),
      redirect: init.redirect === 'manual' || init.redirect === 'error' ? init.redirect : 'follow',
      // Tells the host to make this call cancellable (host-bridge.ts 'call.abort').
      abortable: Boolean(signal),
    };
    request.headers = Array.from(headers.entries());
    return then(callAsync(invocationId, 'fetch', request, signal ?? null), responseFromHost);
  } catch (e) {
    return promiseReject(e);
  }
};

function createBtClient(invocationId) {
  return Object.freeze({
    tokens: Object.freeze({
      create: (input) => callAsync(invocationId, 'bt.tokens.create', { input }),
      retrieve: (id) => callAsync(invocationId, 'bt.tokens.retrieve', { id: NativeString(id) }),
      update: (id, input) => callAsync(invocationId, 'bt.tokens.update', { id: NativeString(id), input }),
      delete: (id) => callAsync(invocationId, 'bt.tokens.delete', { id: NativeString(id) }),
    }),
    tokenize: (request) => callAsync(invocationId, 'bt.tokenize', { input: request }),
  });
}
