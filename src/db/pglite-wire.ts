import { Duplex } from 'node:stream';
import type { PGlite } from '@electric-sql/pglite';

// What pg's handshake expects of a server that needs no password: AuthenticationOk, then ReadyForQuery (idle).
const AUTHENTICATION_OK = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]);
const READY_FOR_QUERY_IDLE = Buffer.from([0x5a, 0, 0, 0, 5, 0x49]);
const TERMINATE = 0x58;
const READY_FOR_QUERY = 0x5a;
const IDLE = 0x49;
const ROLLBACK = simpleQuery('rollback');
const DEALLOCATE_ALL = simpleQuery('deallocate all');

/**
 * A `pg` connection to an in-process PGlite: the socket `pg.Client` would write to (its `stream` option) is this
 * Duplex, which hands the messages to PGlite's `execProtocolRaw` (the entry PGlite's own socket server uses) and
 * pushes back what Postgres answered. So the embedded database runs through the same driver, type parsing and errors
 * as Postgres does, and skips PGlite's own query layer, which makes six calls into Postgres per query (parse,
 * describe, bind, describe, execute, sync) and copies its 316-entry parser table each time: a 1-row select by key
 * took 221 µs through `PGlite.query` (its parser table already trimmed) and 179 µs through this, 100 µs as a
 * prepared statement (bench numbers in BENCHMARKS.md).
 *
 * PGlite is one Postgres session: every stream shares it. Use one at a time (a pg.Pool of max 1). A stream that ends
 * inside a transaction rolls it back, as a server does when a connection drops, and a new one starts without prepared
 * statements.
 */
export class PgliteWire extends Duplex {
  readonly #pglite: PGlite;
  #started = false;
  #pending: Buffer[] = [];
  #flushScheduled = false;
  /** The calls into PGlite, one after another. */
  #chain: Promise<void> = Promise.resolve();
  /** The session's transaction status byte of the last ReadyForQuery: I(dle), T(ransaction) or E(rror). */
  #status = IDLE;

  constructor(pglite: PGlite) {
    super();
    this.#pglite = pglite;
  }

  // The parts of net.Socket pg's Connection calls.
  connect(): this {
    process.nextTick(() => this.emit('connect'));
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (!this.#started) {
      // The startup message: PGlite's session is open already and asks for no password. A new connection has no
      // prepared statements, and pg counts on that, but the session keeps those of the client before this one (one
      // the pool dropped after an error): they go. Its LISTENs stay, since the database handle listens once.
      this.#started = true;
      this.#enqueue(async () => {
        await this.#call(DEALLOCATE_ALL);
        this.push(Buffer.concat([AUTHENTICATION_OK, READY_FOR_QUERY_IDLE]));
      });
      done();
      return;
    }
    if (chunk[0] === TERMINATE && chunk.length === 5) {
      this.#enqueue(async () => {
        if (this.#status !== IDLE) await this.#call(ROLLBACK);
        this.push(null);
      });
      done();
      return;
    }
    // pg writes a query's messages (parse, bind, describe, execute, sync) in one turn of the loop: one call for all.
    this.#pending.push(chunk);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      process.nextTick(() => this.#flush());
    }
    done();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    // Destroyed without a Terminate (an error): leave the shared session out of any transaction all the same.
    this.#enqueue(async () => {
      if (this.#status !== IDLE) await this.#call(ROLLBACK).catch(() => {});
    });
    done(error);
  }

  #flush(): void {
    this.#flushScheduled = false;
    const message = this.#pending.length === 1 ? (this.#pending[0] as Buffer) : Buffer.concat(this.#pending);
    this.#pending = [];
    this.#enqueue(async () => {
      const answer = await this.#call(message);
      if (!this.destroyed) this.push(answer);
    });
  }

  #enqueue(step: () => Promise<void>): void {
    this.#chain = this.#chain.then(step).catch((error: unknown) => {
      this.destroy(error instanceof Error ? error : new Error(String(error)));
    });
  }

  async #call(message: Uint8Array): Promise<Buffer> {
    const raw = await this.#pglite.runExclusive(() => this.#pglite.execProtocolRaw(message));
    const answer = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    // The answer ends with ReadyForQuery ('Z', length 5, status) whenever it ends a query.
    const last = answer.length - 6;
    if (last >= 0 && answer[last] === READY_FOR_QUERY) this.#status = answer[last + 5] as number;
    return answer;
  }
}

function simpleQuery(text: string): Buffer {
  const body = Buffer.from(`${text}\0`);
  const header = Buffer.alloc(5);
  header[0] = 0x51;
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}
