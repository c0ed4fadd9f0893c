import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReactorWithCode, REACT } from '../support/fixtures.ts';
import { fuzzSettings } from '../support/fuzz.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import {
  ALL_TOKEN_PERMISSIONS,
  applicationKey,
  COMMIT_TRANSACTION,
  CREATE_TOKEN,
  CREATE_TRANSACTION,
  DELETE_TOKEN,
  expireNow,
  listAllTokens,
  READ_TOKEN,
  READ_TRANSACTION,
  ROLLBACK_TRANSACTION,
  UNKNOWN_ID,
  UPDATE_TOKEN,
} from '../tokens/support.ts';

/**
 * Tokens and transactions against a model: generated sequences of token creates (by `createToken` and by a
 * formula's `tokenize`), updates, deletes, reads, detokenizing `react` calls, commits, rollbacks, expiries and sweeps, with
 * and without a transaction (open, finished or unknown). After every step the gateway's answer must be the model's,
 * and at the end every token must read as the model says, with and without each transaction, and the `tokens` list
 * must hold exactly those.
 */

const { seed: SEED, runs: RUNS } = fuzzSettings(60);

type Status = 'OPEN' | 'COMMITTED' | 'ROLLED_BACK' | 'EXPIRED';
interface ModelTransaction {
  id: string;
  status: Status;
}
interface ModelToken {
  id: string;
  data: string;
  /** The transaction it was created in, until that commits. */
  pendingIn: ModelTransaction | null;
  /** The open transaction holding its delete. */
  heldBy: ModelTransaction | null;
  /** The open transaction holding an update of it, and the data that update wrote. */
  update: { tx: ModelTransaction; data: string } | null;
  gone: boolean;
}
const UNKNOWN: ModelTransaction = { id: UNKNOWN_ID, status: 'OPEN' };

/** What a reader sees: committed tokens, and pending ones of its open transaction, less the ones it holds for deletion. */
function visible(token: ModelToken, tx: ModelTransaction | null): boolean {
  if (token.gone) return false;
  if (token.pendingIn !== null && !(token.pendingIn === tx && tx.status === 'OPEN')) return false;
  return token.heldBy === null || token.heldBy !== tx;
}

/** The data a reader sees of a visible token: its transaction's pending update, or the committed data. */
function seen(token: ModelToken, tx: ModelTransaction | null): string {
  return token.update !== null && token.update.tx === tx ? token.update.data : token.data;
}

/** Another open transaction holds the token, for deletion or an update. */
function heldElsewhere(token: ModelToken, tx: ModelTransaction | null): boolean {
  return (token.heldBy !== null && token.heldBy !== tx) || (token.update !== null && token.update.tx !== tx);
}

// A reference picks an item of what exists so far (modulo its length); `tx` may also be none or an unknown id.
const txRef = fc.oneof(
  { weight: 2, arbitrary: fc.constant<'none'>('none') },
  { weight: 3, arbitrary: fc.nat(7) },
  { weight: 1, arbitrary: fc.constant<'unknown'>('unknown') },
);
const op = fc.oneof(
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('createTx' as const) }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constantFrom('createToken' as const, 'tokenize' as const), tx: txRef }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constantFrom('delete' as const, 'read' as const, 'use' as const),
      token: fc.nat(15),
      tx: txRef,
    }),
  },
  // Updates have the most cases (own, pending, held elsewhere, created in the transaction): they come often.
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('update' as const), token: fc.nat(15), tx: txRef }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom('commit' as const, 'rollback' as const), tx: txRef }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom('expire' as const, 'sweep' as const), tx: fc.nat(7) }) },
);
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

let gateway: TestGateway;
let tenant: TestTenant;
let reactorId: string;
let key: string;
beforeAll(async () => {
  gateway = await startTestGateway();
  tenant = await gateway.createTenant('Model');
  key = await applicationKey(gateway, tenant, 'PRIVATE', ALL_TOKEN_PERMISSIONS);
  reactorId = await createReactorWithCode(
    gateway,
    tenant.managementKey,
    'module.exports = async (req) => ({ raw: { v: req.args.v ?? null }, tokenize: req.args.make ? { made: req.args.make } : undefined });',
  );
});
afterAll(() => gateway?.close());

/** One generated sequence against a fresh model; returns the first disagreement, or null. */
async function replay(ops: Op[]): Promise<string | null> {
  const txs: ModelTransaction[] = [];
  const tokens: ModelToken[] = [];
  let counter = 0;
  // This sequence's tokens carry it in their metadata, so the `tokens` list can be asked for them alone.
  const run = { run: randomUUID() };
  const gql = async (query: string, variables: Record<string, unknown>) => {
    const response = await gateway.gql(query, variables, key);
    if (response.errors) throw new Error(`${query}: ${JSON.stringify(response.errors)}`);
    return response.data!;
  };
  const pickTx = (ref: 'none' | 'unknown' | number): ModelTransaction | null | undefined => {
    if (ref === 'none') return null;
    if (ref === 'unknown') return UNKNOWN;
    return txs.length === 0 ? undefined : txs[ref % txs.length];
  };
  /** The answer a write in `tx` gets before anything else: NOT_FOUND for an unknown one, CONFLICT for a finished one. */
  const refusal = (tx: ModelTransaction | null): string | null => {
    if (tx === UNKNOWN) return 'NOT_FOUND';
    if (tx !== null && tx.status !== 'OPEN') return `CONFLICT ${tx.status}`;
    return null;
  };
  const outcome = (result: { __typename: string; code?: string; message?: string }): string =>
    result.__typename === 'ConflictError'
      ? `CONFLICT ${/is (\w+);/.exec(result.message ?? '')?.[1]}`
      : (result.code ?? 'OK');

  for (const [step, current] of ops.entries()) {
    const where = `step ${step} ${JSON.stringify(current)}`;
    if (current.kind === 'createTx') {
      const created = (await gql(CREATE_TRANSACTION, {})).createTransaction;
      txs.push({ id: created.id, status: 'OPEN' });
      continue;
    }
    if (current.kind === 'expire' || current.kind === 'sweep') {
      const tx = txs.length === 0 ? undefined : txs[current.tx % txs.length];
      if (current.kind === 'sweep') {
        await gateway.app.services.transactions.sweepExpired();
        continue;
      }
      if (tx?.status !== 'OPEN') continue;
      await expireNow(gateway, 'transactions', tx.id);
      // Expired is rolled back: what it created is gone at once for every reader, what it held is released.
      tx.status = 'EXPIRED';
      for (const token of tokens) {
        if (token.pendingIn === tx) token.gone = true;
        if (token.heldBy === tx) token.heldBy = null;
        if (token.update?.tx === tx) token.update = null;
      }
      continue;
    }
    const tx = pickTx(current.tx);
    if (tx === undefined) continue;
    const txId = tx?.id ?? null;

    if (current.kind === 'createToken' || current.kind === 'tokenize') {
      const value = `data-${++counter}`;
      const expected = refusal(tx) ?? 'OK';
      let id: string | undefined;
      let got: string;
      if (current.kind === 'createToken') {
        const input = { type: 'TOKEN', data: value, metadata: run };
        const result = (await gql(CREATE_TOKEN, { input, tx: txId })).createToken;
        got = outcome(result);
        id = result.id;
      } else {
        const make = { type: 'TOKEN', data: value, metadata: run };
        const result = (await gql(REACT, { id: reactorId, args: { make }, tx: txId })).react;
        got = outcome(result);
        id = result.tokens?.made?.id ?? result.tokens?.made;
      }
      if (got !== expected) return `${where}: ${got}, the model says ${expected}`;
      if (expected === 'OK')
        tokens.push({ id: id!, data: value, pendingIn: tx, heldBy: null, update: null, gone: false });
      continue;
    }
    if (current.kind === 'commit' || current.kind === 'rollback') {
      if (tx === null) continue;
      const document = current.kind === 'commit' ? COMMIT_TRANSACTION : ROLLBACK_TRANSACTION;
      const result = (await gql(document, { id: tx.id }))[`${current.kind}Transaction`];
      const expected = refusal(tx) ?? 'OK';
      if (outcome(result) !== expected) return `${where}: ${outcome(result)}, the model says ${expected}`;
      if (expected !== 'OK') continue;
      tx.status = current.kind === 'commit' ? 'COMMITTED' : 'ROLLED_BACK';
      for (const token of tokens) {
        if (token.pendingIn === tx) {
          if (current.kind === 'commit') token.pendingIn = null;
          else token.gone = true;
        }
        if (token.heldBy === tx) {
          if (current.kind === 'commit') token.gone = true;
          token.heldBy = null;
        }
        if (token.update?.tx === tx) {
          if (current.kind === 'commit') token.data = token.update.data;
          token.update = null;
        }
      }
      continue;
    }

    const { token: tokenRef } = current as Extract<Op, { kind: 'read' }>;
    const token = tokens.length === 0 ? undefined : tokens[tokenRef % tokens.length];
    if (!token) continue;
    if (current.kind === 'read') {
      const read = (await gql(READ_TOKEN, { id: token.id, tx: txId })).token;
      const expected = visible(token, tx) ? seen(token, tx) : null;
      if ((read?.data ?? null) !== expected) return `${where}: read ${read?.data ?? null}, the model says ${expected}`;
    } else if (current.kind === 'use') {
      const result = (await gql(REACT, { id: reactorId, args: { v: `{{ ${token.id} }}` }, tx: txId })).react;
      const got = result.__typename === 'ReactorResponse' ? result.raw.v : outcome(result);
      // react may write its tokenize output in the transaction, so it refuses one that cannot take writes first.
      const expected = refusal(tx) ?? (visible(token, tx) ? seen(token, tx) : 'BAD_REQUEST');
      if (got !== expected) return `${where}: react saw ${got}, the model says ${expected}`;
    } else {
      // An update or a delete: refused for the transaction, then for the token, else done.
      const value = `data-${++counter}`;
      const result =
        current.kind === 'update'
          ? (await gql(UPDATE_TOKEN, { id: token.id, input: { data: value }, tx: txId })).updateToken
          : (await gql(DELETE_TOKEN, { id: token.id, tx: txId })).deleteToken;
      let expected = refusal(tx);
      if (expected === null && !visible(token, tx)) expected = 'NOT_FOUND';
      if (expected === null && heldElsewhere(token, tx)) expected = 'CONFLICT';
      const got = outcome(result);
      if (got.split(' ')[0] !== (expected ?? 'OK').split(' ')[0] || (expected?.includes(' ') && got !== expected)) {
        return `${where}: ${got}, the model says ${expected ?? 'OK'}`;
      }
      if (expected !== null) continue;
      if (current.kind === 'update') {
        if (tx === null || token.pendingIn === tx) token.data = value;
        else token.update = { tx, data: value };
        continue;
      }
      if (tx !== null && token.pendingIn === tx) token.gone = true;
      else if (tx !== null) token.heldBy = tx;
      else token.gone = true;
    }
  }

  // Every token, read without a transaction and within each one; every transaction's status.
  for (const token of tokens) {
    for (const tx of [null, UNKNOWN, ...txs]) {
      const read = (await gql(READ_TOKEN, { id: token.id, tx: tx?.id ?? null })).token;
      const expected = visible(token, tx) ? seen(token, tx) : null;
      if ((read?.data ?? null) !== expected) {
        return `at the end, ${token.id} in ${tx?.id ?? 'none'}: read ${read?.data ?? null}, the model says ${expected}`;
      }
    }
  }
  // And the `tokens` list, without a transaction and within each one: exactly the tokens a read sees, as it sees them.
  for (const tx of [null, UNKNOWN, ...txs]) {
    const listed = await listAllTokens(gateway, key, { metadata: run, tx: tx?.id ?? null });
    const got = listed.tokens.map((token) => `${token.id}=${token.data}`);
    const expected = tokens.filter((token) => visible(token, tx)).map((token) => `${token.id}=${seen(token, tx)}`);
    if (JSON.stringify(got.sort()) !== JSON.stringify(expected.sort()) || listed.totalCount !== expected.length) {
      return `at the end, tokens in ${tx?.id ?? 'none'}: listed ${got} (${listed.totalCount}), the model says ${expected}`;
    }
  }
  for (const tx of txs) {
    const read = (await gql(READ_TRANSACTION, { id: tx.id })).transaction;
    if (read.status !== tx.status) return `at the end, transaction ${tx.id} is ${read.status}, not ${tx.status}`;
  }
  return null;
}

describe('tokens and transactions against a model', () => {
  it('answer every generated sequence of operations as the model does', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 15, maxLength: 40 }), async (ops) => {
        expect(await replay(ops)).toBeNull();
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });
});
