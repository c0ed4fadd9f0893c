import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { until } from '../support/until.ts';

let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway();
});
afterAll(() => gateway?.close());

it('sends many payloads in one statement and delivers them in order', async () => {
  const { notifier } = gateway.app.database;
  const received: string[] = [];
  const payloads = Array.from({ length: 25 }, (_, i) => `payload ${i} ${'x'.repeat(i * 100)}`);
  const stop = await notifier.listen('notifier_test', (payload) => received.push(payload));
  try {
    await notifier.notify('notifier_test', payloads);
    await until('every notification', () => (received.length >= payloads.length ? true : undefined), 5_000);
    expect(received).toEqual(payloads);
  } finally {
    await stop();
  }
});
