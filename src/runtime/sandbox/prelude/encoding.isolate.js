// Pure-JS text and binary helpers, so no host object is needed for them. Bytes go straight into typed arrays: an
// array of numbers would take 8 bytes of the isolate's memory limit per byte of a (up to 5 MB) fetch body.
function utf8Encode(text) {
  const s = NativeString(text);
  const out = new Uint8Array(s.length * 3);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      out[n++] = c;
      continue;
    }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      } else c = 0xfffd;
    } else if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
    if (c < 0x800) {
      out[n++] = 0xc0 | (c >> 6);
      out[n++] = 0x80 | (c & 63);
    } else if (c < 0x10000) {
      out[n++] = 0xe0 | (c >> 12);
      out[n++] = 0x80 | ((c >> 6) & 63);
      out[n++] = 0x80 | (c & 63);
    } else {
      out[n++] = 0xf0 | (c >> 18);
      out[n++] = 0x80 | ((c >> 12) & 63);
      out[n++] = 0x80 | ((c >> 6) & 63);
      out[n++] = 0x80 | (c & 63);
    }
  }
  return out.slice(0, n);
}

function utf8Decode(bytes) {
  let out = '';
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    let c = 0xfffd;
    let n = 1;
    if (b < 0x80) c = b;
    else if (b >= 0xc2 && b < 0xe0 && (bytes[i + 1] & 0xc0) === 0x80) {
      c = ((b & 31) << 6) | (bytes[i + 1] & 63);
      n = 2;
    } else if (b >= 0xe0 && b < 0xf0 && (bytes[i + 1] & 0xc0) === 0x80 && (bytes[i + 2] & 0xc0) === 0x80) {
      c = ((b & 15) << 12) | ((bytes[i + 1] & 63) << 6) | (bytes[i + 2] & 63);
      n = 3;
    } else if (
      b >= 0xf0 &&
      b < 0xf5 &&
      (bytes[i + 1] & 0xc0) === 0x80 &&
      (bytes[i + 2] & 0xc0) === 0x80 &&
      (bytes[i + 3] & 0xc0) === 0x80
    ) {
      c = ((b & 7) << 18) | ((bytes[i + 1] & 63) << 12) | ((bytes[i + 2] & 63) << 6) | (bytes[i + 3] & 63);
      n = 4;
    }
    out += NativeString.fromCodePoint(c);
    i += n;
  }
  return out;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = Object.create(null);
for (let i = 0; i < 64; i++) B64_INDEX[B64[i]] = i;
B64_INDEX['-'] = 62;
B64_INDEX._ = 63;

function base64Encode(bytes, url) {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63];
    out += i + 1 < bytes.length ? B64[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.length ? B64[n & 63] : '=';
  }
  return url ? out.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '') : out;
}

function base64Decode(text) {
  const s = NativeString(text);
  const out = new Uint8Array(Math.ceil((s.length * 3) / 4));
  let n = 0;
  let bits = 0;
  let acc = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === '=' || ch === ' ' || ch === '\n' || ch === '\r' || ch === '\t') continue;
    const v = B64_INDEX[ch];
    if (v === undefined) throw new NativeError('Invalid base64 input');
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >> bits) & 0xff;
    }
  }
  return n === out.length ? out : out.slice(0, n);
}

function hexEncode(bytes) {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return out;
}

function hexDecode(text) {
  const s = NativeString(text);
  const out = new Uint8Array(s.length >> 1);
  for (let i = 0; i < out.length; i++) {
    const v = Number.parseInt(s.substr(i * 2, 2), 16);
    if (Number.isNaN(v)) return out.subarray(0, i);
    out[i] = v;
  }
  return out;
}

function latin1Decode(bytes) {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += NativeString.fromCharCode(bytes[i]);
  return out;
}

function latin1Encode(text) {
  const s = NativeString(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

function encodeString(text, encoding) {
  switch (NativeString(encoding || 'utf8').toLowerCase()) {
    case 'utf8':
    case 'utf-8':
      return utf8Encode(text);
    case 'base64':
    case 'base64url':
      return base64Decode(text);
    case 'hex':
      return hexDecode(text);
    case 'latin1':
    case 'binary':
    case 'ascii':
      return latin1Encode(text);
    default:
      throw new TypeError(`Unknown encoding: ${encoding}`);
  }
}

function decodeBytes(bytes, encoding) {
  switch (NativeString(encoding || 'utf8').toLowerCase()) {
    case 'utf8':
    case 'utf-8':
      return utf8Decode(bytes);
    case 'base64':
      return base64Encode(bytes, false);
    case 'base64url':
      return base64Encode(bytes, true);
    case 'hex':
      return hexEncode(bytes);
    case 'latin1':
    case 'binary':
    case 'ascii':
      return latin1Decode(bytes);
    default:
      throw new TypeError(`Unknown encoding: ${encoding}`);
  }
}

function toBytes(data, encoding) {
  if (typeof data === 'string') return encodeString(data, encoding);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) return Uint8Array.from(data);
  throw new TypeError('Expected a string, ArrayBuffer, typed array or array of bytes');
}

class Buffer extends Uint8Array {
  static from(data, encodingOrOffset, length) {
    if (data instanceof ArrayBuffer)
      return new Buffer(data, encodingOrOffset ?? 0, length ?? data.byteLength - (encodingOrOffset ?? 0));
    if (data && data.type === 'Buffer' && Array.isArray(data.data)) return Buffer.from(data.data);
    const bytes = toBytes(data, encodingOrOffset);
    const out = new Buffer(bytes.length);
    out.set(bytes);
    return out;
  }
  static alloc(size, fill) {
    const out = new Buffer(size);
    if (fill !== undefined) out.fill(typeof fill === 'string' ? fill.charCodeAt(0) : fill);
    return out;
  }
  static isBuffer(value) {
    return value instanceof Buffer;
  }
  static byteLength(data, encoding) {
    return toBytes(data, encoding).length;
  }
  static concat(list, total) {
    const size = total ?? list.reduce((n, b) => n + b.length, 0);
    const out = new Buffer(size);
    let offset = 0;
    for (const b of list) {
      if (offset >= size) break;
      out.set(b.subarray(0, size - offset), offset);
      offset += b.length;
    }
    return out;
  }
  toString(encoding, start, end) {
    return decodeBytes(this.subarray(start ?? 0, end ?? this.length), encoding);
  }
  toJSON() {
    return { type: 'Buffer', data: Array.from(this) };
  }
  equals(other) {
    if (!(other instanceof Uint8Array) || other.length !== this.length) return false;
    for (let i = 0; i < this.length; i++) if (this[i] !== other[i]) return false;
    return true;
  }
  write(text, offset = 0, encoding) {
    const bytes = encodeString(text, encoding);
    const n = Math.min(bytes.length, this.length - offset);
    this.set(bytes.subarray(0, n), offset);
    return n;
  }
}
G.Buffer = Buffer;

G.TextEncoder = class TextEncoder {
  get encoding() {
    return 'utf-8';
  }
  encode(text = '') {
    return utf8Encode(text);
  }
};
G.TextDecoder = class TextDecoder {
  constructor(label = 'utf-8') {
    const l = NativeString(label).toLowerCase();
    if (l !== 'utf-8' && l !== 'utf8') throw new RangeError(`TextDecoder supports utf-8 only, not ${label}`);
  }
  get encoding() {
    return 'utf-8';
  }
  decode(data) {
    return data === undefined ? '' : utf8Decode(toBytes(data));
  }
};
G.btoa = (text) => {
  const s = NativeString(text);
  for (let i = 0; i < s.length; i++)
    if (s.charCodeAt(i) > 255) throw new NativeError('btoa: string contains characters outside Latin1');
  return base64Encode(latin1Encode(s), false);
};
G.atob = (text) => latin1Decode(base64Decode(text));
