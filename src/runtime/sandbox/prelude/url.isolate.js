// URL parsing is delegated to the host's WHATWG parser through a JSON-string call; only the parts come back.
const urlParts = new WeakMap();
const URL_FIELDS = [
  'href',
  'origin',
  'protocol',
  'username',
  'password',
  'host',
  'hostname',
  'port',
  'pathname',
  'search',
  'hash',
];

function formEncode(text) {
  return encodeURIComponent(text)
    .replace(/%20/g, '+')
    .replace(/[!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
function formDecode(text) {
  const s = NativeString(text).replace(/\+/g, ' ');
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

class URLSearchParams {
  #list = [];
  #onChange = null;
  constructor(init) {
    if (init === undefined || init === null) return;
    if (typeof init === 'string') this.#parse(init);
    else if (init instanceof URLSearchParams) this.#list = init.#list.map((p) => [p[0], p[1]]);
    else if (typeof init === 'object' && typeof init[Symbol.iterator] === 'function') {
      for (const pair of init) this.#list.push([NativeString(pair[0]), NativeString(pair[1])]);
    } else if (typeof init === 'object') {
      for (const key of Object.keys(init)) this.#list.push([key, NativeString(init[key])]);
    } else this.#parse(NativeString(init));
  }
  #parse(text) {
    this.#list = [];
    for (const part of text.replace(/^\?/, '').split('&')) {
      if (!part) continue;
      const eq = part.indexOf('=');
      this.#list.push(
        eq < 0 ? [formDecode(part), ''] : [formDecode(part.slice(0, eq)), formDecode(part.slice(eq + 1))],
      );
    }
  }
  static _link(params, search, onChange) {
    params.#parse(search);
    params.#onChange = onChange;
  }
  static _reparse(params, search) {
    params.#parse(search);
  }
  #changed() {
    if (this.#onChange) this.#onChange(this.toString());
  }
  get size() {
    return this.#list.length;
  }
  append(name, value) {
    this.#list.push([NativeString(name), NativeString(value)]);
    this.#changed();
  }
  delete(name) {
    this.#list = this.#list.filter((p) => p[0] !== NativeString(name));
    this.#changed();
  }
  get(name) {
    const hit = this.#list.find((p) => p[0] === NativeString(name));
    return hit ? hit[1] : null;
  }
  getAll(name) {
    return this.#list.filter((p) => p[0] === NativeString(name)).map((p) => p[1]);
  }
  has(name) {
    return this.#list.some((p) => p[0] === NativeString(name));
  }
  set(name, value) {
    const n = NativeString(name);
    const i = this.#list.findIndex((p) => p[0] === n);
    if (i < 0) this.#list.push([n, NativeString(value)]);
    else {
      this.#list[i][1] = NativeString(value);
      this.#list = this.#list.filter((p, j) => j <= i || p[0] !== n);
    }
    this.#changed();
  }
  sort() {
    this.#list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    this.#changed();
  }
  forEach(fn, thisArg) {
    for (const [k, v] of this.#list) fn.call(thisArg, v, k, this);
  }
  keys() {
    return this.#list.map((p) => p[0])[Symbol.iterator]();
  }
  values() {
    return this.#list.map((p) => p[1])[Symbol.iterator]();
  }
  entries() {
    return this.#list.map((p) => [p[0], p[1]])[Symbol.iterator]();
  }
  [Symbol.iterator]() {
    return this.entries();
  }
  toString() {
    return this.#list.map((p) => `${formEncode(p[0])}=${formEncode(p[1])}`).join('&');
  }
}

class URL {
  constructor(input, base) {
    const parts = callSync('url.parse', {
      input: NativeString(input),
      base: base === undefined ? null : NativeString(base),
    });
    const params = new URLSearchParams();
    urlParts.set(this, { parts, params });
    URLSearchParams._link(params, parts.search, (search) => this.#update('search', search));
  }
  static canParse(input, base) {
    try {
      new URL(input, base);
      return true;
    } catch {
      return false;
    }
  }
  #update(field, value) {
    const state = urlParts.get(this);
    state.parts = callSync('url.set', { href: state.parts.href, field, value: NativeString(value) });
    URLSearchParams._reparse(state.params, state.parts.search);
  }
  get searchParams() {
    return urlParts.get(this).params;
  }
  toString() {
    return this.href;
  }
  toJSON() {
    return this.href;
  }
}
for (const field of URL_FIELDS) {
  defineProperty(URL.prototype, field, {
    get() {
      return urlParts.get(this).parts[field];
    },
    set(value) {
      if (field === 'origin') return;
      // Private methods are not reachable from a property descriptor, so setters go through the public path.
      const state = urlParts.get(this);
      state.parts = callSync('url.set', { href: state.parts.href, field, value: NativeString(value) });
      URLSearchParams._reparse(state.params, state.parts.search);
    },
    enumerable: true,
    configurable: true,
  });
}
G.URL = URL;
G.URLSearchParams = URLSearchParams;
