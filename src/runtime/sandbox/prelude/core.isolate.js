// Runs inside the isolate once, before any formula code. Concatenated with the other *.isolate.js parts into one
// strict-mode function body by prelude/index.ts, so they share these bindings without putting them on globalThis.
const G = globalThis;
const hostSync = G.__rgHostSync;
const hostDispatch = G.__rgHostDispatch;
const hostSettle = G.__rgHostSettle;
const config = JSON.parse(G.__rgConfig);
// Formula code may overwrite any built-in; capture the ones the runtime relies on before it gets the chance.
const jsonParse = JSON.parse;
const jsonStringify = JSON.stringify;
const NativePromise = Promise;
const promiseThen = Promise.prototype.then;
const promiseResolve = (v) => NativePromise.resolve(v);
const promiseReject = (e) => NativePromise.reject(e);
const apply = Reflect.apply;
const defineProperty = Object.defineProperty;
const hasOwn = (o, k) => Object.hasOwn(o, k);
const objectAssign = Object.assign;
const NativeError = Error;
const NativeString = String;
const isArray = Array.isArray;
const functionToString = Function.prototype.toString;
const startsWith = String.prototype.startsWith;
const stringIncludes = String.prototype.includes;
const MAX_LOG_LINES = 100;
const MAX_LOG_CHARS = 2048;
const MAX_MESSAGE_CHARS = 4096;

for (const name of ['__rgHostSync', '__rgHostDispatch', '__rgHostSettle', '__rgConfig']) delete G[name];
// Shared memory and Wasm are the usual ways out of a JS-only sandbox's time and memory accounting.
for (const name of ['SharedArrayBuffer', 'Atomics', 'WebAssembly']) delete G[name];
// V8 puts gc on every new context while --expose-gc is set anywhere in the process (worker.ts sets it briefly at close).
delete G.gc;

function hidden(name, value) {
  defineProperty(G, name, { value, writable: false, configurable: false, enumerable: false });
}

function then(p, onOk, onErr) {
  return apply(promiseThen, p, [onOk, onErr]);
}

function describe(value) {
  try {
    if (value !== null && (typeof value === 'object' || typeof value === 'function')) {
      const message = value.message;
      if (typeof message === 'string') return message.slice(0, MAX_MESSAGE_CHARS);
    }
    const text = NativeString(value);
    if (typeof text !== 'string') return 'Reactor threw a value that could not be described';
    // `throw { code: 'declined' }` would read "[object Object]", and an array its items without brackets: the JSON
    // of the value says what was thrown.
    if (value !== null && typeof value === 'object' && (text === '[object Object]' || isArray(value))) {
      const json = jsonStringify(value);
      if (typeof json === 'string') return `Reactor threw a non-Error value: ${json}`.slice(0, MAX_MESSAGE_CHARS);
    }
    return text.slice(0, MAX_MESSAGE_CHARS);
  } catch {
    return 'Reactor threw a value that could not be described';
  }
}

// Host answers are JSON strings; a failure comes back as data and is rethrown here, so no host Error object or
// host stack ever reaches formula code.
function callSync(op, payload) {
  const answer = jsonParse(hostSync(op, jsonStringify(payload === undefined ? null : payload)));
  if (!answer.ok) throw new NativeError(answer.message);
  return answer.value;
}

// --- invocations -------------------------------------------------------------------------------------------
const invocations = Object.create(null);
const calls = Object.create(null);
let callSeq = 0;
// Which invocation globals such as console and fetch belong to. Set on entry and whenever a host answer resumes
// one; formulas that share promises across concurrent calls of themselves can blur it, and only for themselves.
let current = 0;

// `signal`: an AbortSignal of the formula's (events.isolate.js); when it aborts, the call rejects with its reason at
// once and the host is told to cancel it (its late answer then finds no call and is dropped).
function callAsync(invocationId, op, payload, signal) {
  return new NativePromise((resolve, reject) => {
    const callId = ++callSeq;
    const call = { resolve, reject, invocationId, unwatch: null };
    calls[callId] = call;
    hostDispatch(invocationId, callId, op, jsonStringify(payload === undefined ? null : payload));
    if (signal) {
      call.unwatch = watchAbort(signal, () => {
        if (calls[callId] !== call) return;
        delete calls[callId];
        hostSync('call.abort', jsonStringify([invocationId, callId]));
        reject(signal.reason);
      });
    }
  });
}

// The entry points the host calls (__rgDeliver, __rgStart, __rgDefine) never throw and run no formula code of their
// own accord: a value thrown out of one is read on the host, and formula code may have replaced any built-in.
hidden('__rgDeliver', (callId, answerJson) => {
  try {
    deliverAnswer(callId, answerJson);
  } catch {
    // Only formula code (an AbortSignal listener, a promise reaction it poisoned) gets here; its run goes on.
  }
});

function deliverAnswer(callId, answerJson) {
  const call = calls[callId];
  if (!call) return;
  delete calls[callId];
  const answer = jsonParse(answerJson);
  // A call of a finished invocation stays pending forever, so its continuation never runs after the result; nor
  // does anything else of the formula's (a signal's replaced removeEventListener once chained dead calls for good).
  if (answer.dead) return;
  if (call.unwatch) call.unwatch();
  current = call.invocationId;
  if (answer.ok) call.resolve(answer.value);
  else {
    const error = new NativeError(answer.message);
    if (answer.code) {
      error.code = answer.code;
      error.status = answer.status;
      if (answer.errors) error.errors = answer.errors;
    }
    call.reject(error);
  }
}

// Null-prototype objects: a `toJSON` the formula put on Object.prototype is not consulted for the runtime's own.
function errorShape(kind, message, extra) {
  return jsonStringify({ __proto__: null, ok: false, error: objectAssign({ __proto__: null, kind, message }, extra) });
}

function encodeResult(value) {
  try {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      return errorShape('runtime', 'Reactor result must be an object of the form { raw, tokenize }');
    }
    const keys = Object.keys(value);
    for (const key of keys) {
      if (key !== 'raw' && key !== 'tokenize') {
        return errorShape(
          'runtime',
          `Reactor result has an unexpected property "${NativeString(key).slice(0, 100)}"; only raw and tokenize are allowed`,
        );
      }
    }
    let text;
    try {
      text = jsonStringify({ __proto__: null, raw: value.raw, tokenize: value.tokenize });
    } catch (e) {
      return errorShape('runtime', `Reactor result is not JSON-serialisable: ${describe(e)}`);
    }
    if (text.length > config.maxOutputBytes) {
      return errorShape('runtime', `Reactor result exceeds the ${config.maxOutputBytes} byte limit`);
    }
    return `{"ok":true,"result":${text}}`;
  } catch (e) {
    return errorShape('runtime', `Reactor result could not be read: ${describe(e)}`);
  }
}

function encodeError(error) {
  try {
    const brand = sdkBrands.get(error);
    if (brand) return errorShape(brand.kind, describe(error), brand.extra(error));
  } catch {}
  return errorShape('runtime', describe(error));
}

function finish(invocation, answerJson) {
  if (invocation.done) return;
  invocation.done = true;
  delete invocations[invocation.id];
  hostSettle(invocation.id, answerJson);
}

let formulaMain = null;

// A class's source text starts with the keyword and a space, a brace or a comment: `class X`, `class{`. An arrow
// `classify => ...` or a method `classify() {}` starts with the letters only.
function isClass(fn) {
  const source = apply(functionToString, fn, []);
  const next = source[5];
  return apply(startsWith, source, ['class']) && next !== undefined && apply(stringIncludes, ' \t\n\r{/', [next]);
}

hidden('__rgDefine', (factory) => {
  try {
    return defineFormula(factory);
  } catch {
    return '{"ok":false,"message":"Reactor code failed to load: it broke a built-in the runtime uses"}';
  }
});

function defineFormula(factory) {
  const module = { exports: {} };
  let exported;
  try {
    apply(factory, module.exports, [module, module.exports, requireModule]);
    exported = module.exports;
  } catch (e) {
    return jsonStringify({ __proto__: null, ok: false, message: `Reactor code failed to load: ${describe(e)}` });
  }
  // A class is a function too, but calling it without `new` throws: refused here (422), not failed at each run (500).
  if (typeof exported !== 'function' || isClass(exported)) {
    return '{"ok":false,"message":"Reactor code must export a function: module.exports = async function (req) { ... }"}';
  }
  formulaMain = exported;
  return '{"ok":true}';
}

hidden('__rgStart', (id, requestJson) => {
  const invocation = { id, done: false, logs: 0 };
  invocations[id] = invocation;
  current = id;
  let result;
  try {
    const req = jsonParse(requestJson);
    req.bt = req.bt ? createBtClient(id) : null;
    result = promiseResolve(formulaMain(req));
  } catch (e) {
    result = promiseReject(e);
  }
  try {
    then(
      result,
      (v) => finish(invocation, encodeResult(v)),
      (e) => finish(invocation, encodeError(e)),
    );
  } catch (e) {
    finish(invocation, encodeError(e));
  }
});

// --- console -------------------------------------------------------------------------------------------------
function formatArg(value) {
  try {
    if (typeof value === 'string') return value;
    if (value instanceof NativeError) return `${value.name}: ${value.message}`;
    if (value !== null && typeof value === 'object') return jsonStringify(value) ?? NativeString(value);
    return NativeString(value);
  } catch {
    return '[unprintable]';
  }
}

function logger(level) {
  return (...args) => {
    let message = '';
    for (let i = 0; i < args.length && message.length < MAX_LOG_CHARS; i++)
      message += (i ? ' ' : '') + formatArg(args[i]);
    logLine(level, message);
  };
}

function logLine(level, message) {
  const invocation = invocations[current];
  if (!invocation || invocation.logs >= MAX_LOG_LINES) return;
  invocation.logs++;
  // Built by hand: an array would consult a `toJSON` the formula put on Array.prototype (strings do not).
  hostSync('log', `[${current},${jsonStringify(level)},${jsonStringify(message.slice(0, MAX_LOG_CHARS))}]`);
}

// Node would end the process; here the run goes on, and its logs say what was thrown where nobody could catch it.
function reportUncaught(where, error) {
  logLine('error', `Uncaught exception in ${where}: ${formatArg(error)}`);
}
G.console = {
  log: logger('log'),
  info: logger('log'),
  debug: logger('log'),
  warn: logger('warn'),
  error: logger('error'),
};

// --- timers --------------------------------------------------------------------------------------------------
const timers = Object.create(null);
let timerSeq = 0;
G.setTimeout = (fn, ms, ...args) => {
  if (typeof fn !== 'function') throw new TypeError('setTimeout expects a function');
  const invocationId = current;
  const timerId = ++timerSeq;
  timers[timerId] = true;
  then(callAsync(invocationId, 'sleep', { ms: Number(ms) || 0 }), () => {
    if (!timers[timerId]) return;
    delete timers[timerId];
    current = invocationId;
    try {
      fn(...args);
    } catch (e) {
      reportUncaught('a setTimeout callback', e);
    }
  });
  return timerId;
};
const startTimer = G.setTimeout;
G.clearTimeout = (timerId) => {
  delete timers[timerId];
};
G.queueMicrotask = (fn) => {
  if (typeof fn !== 'function') throw new TypeError('queueMicrotask expects a function');
  then(promiseResolve(undefined), () => {
    try {
      fn();
    } catch (e) {
      reportUncaught('a queueMicrotask callback', e);
    }
  });
};
