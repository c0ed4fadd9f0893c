// A node-like subset (createHash, createHmac, randomBytes, randomUUID, getRandomValues, timingSafeEqual). Digests
// run on the host through JSON-string calls; bytes travel as base64.
const HASHES = ['sha1', 'sha256', 'sha384', 'sha512', 'md5'];

function digestOutput(b64, encoding) {
  const bytes = Buffer.from(b64, 'base64');
  return encoding ? bytes.toString(encoding) : bytes;
}

class Hash {
  #op;
  #algorithm;
  #key;
  #chunks = [];
  #done = false;
  constructor(op, algorithm, key) {
    const alg = NativeString(algorithm).toLowerCase().replace('-', '');
    if (!HASHES.includes(alg)) throw new NativeError(`Digest method not supported: ${algorithm}`);
    this.#op = op;
    this.#algorithm = alg;
    this.#key = key === undefined ? undefined : base64Encode(toBytes(key, 'utf8'));
  }
  update(data, encoding) {
    if (this.#done) throw new NativeError('Digest already called');
    this.#chunks.push(toBytes(data, encoding));
    return this;
  }
  digest(encoding) {
    if (this.#done) throw new NativeError('Digest already called');
    this.#done = true;
    const data = base64Encode(Buffer.concat(this.#chunks));
    return digestOutput(callSync(this.#op, { algorithm: this.#algorithm, key: this.#key, data }), encoding);
  }
}

function randomBase64(size) {
  const n = Number(size);
  if (!Number.isInteger(n) || n < 0 || n > 65536)
    throw new RangeError('Random byte count must be an integer between 0 and 65536');
  return callSync('crypto.random', { size: n });
}

function bufferArgument(value, name) {
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return toBytes(value);
  const error = new TypeError(
    `The "${name}" argument must be an instance of ArrayBuffer, Buffer, TypedArray, or DataView.`,
  );
  error.code = 'ERR_INVALID_ARG_TYPE';
  throw error;
}

// Every byte is compared whatever the earlier ones were, so the time taken does not tell where they differ.
function timingSafeEqual(a, b) {
  const left = bufferArgument(a, 'buf1');
  const right = bufferArgument(b, 'buf2');
  if (left.length !== right.length) {
    const error = new RangeError('Input buffers must have the same byte length');
    error.code = 'ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH';
    throw error;
  }
  let difference = 0;
  for (let i = 0; i < left.length; i++) difference |= left[i] ^ right[i];
  return difference === 0;
}

const cryptoModule = Object.freeze({
  timingSafeEqual,
  createHash: (algorithm) => new Hash('crypto.hash', algorithm),
  createHmac: (algorithm, key) => new Hash('crypto.hmac', algorithm, key),
  randomBytes: (size) => Buffer.from(randomBase64(size), 'base64'),
  randomUUID: () => callSync('crypto.uuid'),
  getRandomValues: (array) => {
    if (!ArrayBuffer.isView(array) || array instanceof Float32Array || array instanceof Float64Array) {
      throw new TypeError('getRandomValues expects an integer typed array');
    }
    const bytes = Buffer.from(randomBase64(array.byteLength), 'base64');
    new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(bytes);
    return array;
  },
});
G.crypto = cryptoModule;

const builtinModules = Object.freeze({
  '@basis-theory/basis-theory-reactor-formulas-sdk-js': sdkModule,
  crypto: cryptoModule,
  'node:crypto': cryptoModule,
  buffer: Object.freeze({ Buffer }),
  'node:buffer': Object.freeze({ Buffer }),
});

function requireModule(name) {
  const key = NativeString(name);
  if (hasOwn(builtinModules, key)) return builtinModules[key];
  throw new NativeError(`Module "${key.slice(0, 200)}" is not available in reactor formulas`);
}
