// The reference point of the trivial-query figure: Mercurius (Fastify) answering `{ hello }`, nothing else.
// A dev dependency used by the benchmark only.
import Fastify from 'fastify';
import mercurius from 'mercurius';

const app = Fastify({ logger: false });
await app.register(mercurius, {
  schema: 'type Query { hello: String }',
  resolvers: { Query: { hello: async () => 'world' } },
});
app.get('/health', async () => ({ status: 'ok' }));
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
process.once('SIGTERM', () => void app.close());
