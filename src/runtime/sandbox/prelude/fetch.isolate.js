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

class Response {
  #body;
  #used = false;
  constructor(body, init = {}) {
    this.#body = body === undefined || body === null ? '' : NativeString(body);
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
  #consume() {
    if (this.#used) return promiseReject(new TypeError('Body has already been consumed'));
    this.#used = true;
    return promiseResolve(this.#body);
  }
  text() {
    return this.#consume();
  }
  json() {
    return then(this.#consume(), (text) => jsonParse(text));
  }
  arrayBuffer() {
    return then(this.#consume(), (text) => utf8Encode(text).buffer);
  }
}

function serialiseBody(body, headers) {
  if (body === undefined || body === null) return null;
  if (typeof body === 'string') return { text: body };
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
    const headers = new Headers(init.headers);
    const request = {
      url,
      method: NativeString(init.method || 'GET').toUpperCase(),
      headers: Array.from(headers.entries()),
      body: serialiseBody(init.body, headers),
      redirect: init.redirect === 'manual' || init.redirect === 'error' ? init.redirect : 'follow',
    };
    request.headers = Array.from(headers.entries());
    return then(callAsync(invocationId, 'fetch', request), (r) => new Response(r.body, r));
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
