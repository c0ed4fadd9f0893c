import { MAX_LISTED_IDS, pageRequest } from '../db/pagination.ts';
import { BadRequestError, ConflictError, ForbiddenError, NotFoundError } from '../errors.ts';
import { builder } from '../graphql/builder.ts';
import { toConnection, totalCountFields } from '../graphql/connection.ts';
import { principalOf } from '../graphql/context.ts';
import type { Token } from './service.ts';
import { DEFAULT_CONTAINERS } from './token-input.ts';

export const TokenTypeEnum = builder.enumType('TokenType', {
  description: 'What kind of data a token holds, which decides how its data is validated and masked.',
  values: {
    TOKEN: {
      description: `Generic data: a non-empty string, number, boolean, object or array. Default container ${DEFAULT_CONTAINERS.TOKEN}.`,
    },
    CARD: {
      description: `A payment card: { number, expiration_month, expiration_year, cvc? }. Default container ${DEFAULT_CONTAINERS.CARD}.`,
    },
    BANK: {
      description: `A US bank account: { routing_number, account_number }. Default container ${DEFAULT_CONTAINERS.BANK}.`,
    },
  },
});

export const TokenRef = builder.objectRef<Token>('Token').implement({
  description: 'Sensitive data kept encrypted at rest, referenced by its id (e.g. in reactor args as `{{ <id> }}`).',
  fields: (t) => ({
    id: t.expose('id', { type: 'UUID', description: 'Unique identifier of the token.' }),
    type: t.field({ type: TokenTypeEnum, description: 'The token type.', resolve: (token) => token.type }),
    data: t.field({
      type: 'JSON',
      nullable: true,
      description: 'The decrypted data; null unless the API key holds `token:read` (the data is not decrypted then).',
      resolve: (token) => token.data,
    }),
    mask: t.field({
      type: 'JSON',
      nullable: true,
      description: 'The non-sensitive part of the data (card: bin, last4, brand, expiry; bank: last4); null for TOKEN.',
      resolve: (token) => token.mask,
    }),
    fingerprint: t.exposeString('fingerprint', {
      description:
        'Keyed hash of the type and data: equal data of a tenant has equal fingerprints, without revealing it.',
    }),
    metadata: t.field({
      type: 'JSONObject',
      description: 'Non-sensitive key-value pairs stored in plaintext alongside the token.',
      resolve: (token) => token.metadata,
    }),
    containers: t.exposeStringList('containers', {
      description: 'Access containers of the token, paths like `/pci/high/`.',
    }),
    createdBy: t.expose('createdBy', { type: 'UUID', description: 'The application that created the token.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When the token was created.' }),
    expiresAt: t.expose('expiresAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When the token expires (it is invisible from then on and purged later); null for never.',
    }),
    modifiedBy: t.expose('modifiedBy', {
      type: 'UUID',
      nullable: true,
      description: 'The application that last changed the token with `updateToken`; null if never changed.',
    }),
    modifiedAt: t.expose('modifiedAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When the token was last changed (inside a transaction: when the update was made); null if never.',
    }),
  }),
});

const CreateTokenInput = builder.inputType('CreateTokenInput', {
  description: 'A new token.',
  fields: (t) => ({
    type: t.field({ type: TokenTypeEnum, required: true, description: 'The token type.' }),
    data: t.field({ type: 'JSON', required: true, description: 'The sensitive data, validated by type.' }),
    metadata: t.field({
      type: 'JSONObject',
      required: false,
      description:
        'Non-sensitive key-value pairs (string, number, boolean or null values; at most 50, keys of at most 100 ' +
        'characters, string values of at most 1,000), stored unencrypted.',
    }),
    containers: t.stringList({
      required: false,
      description: 'Container paths like `/general/high/` (1 to 10); defaults by type (see `TokenType`).',
    }),
    expiresAt: t.field({
      type: 'DateTime',
      required: false,
      description: 'When the token expires; must be in the future. Omit for a token that never expires.',
    }),
  }),
});

const UpdateTokenInput = builder.inputType('UpdateTokenInput', {
  description:
    'An RFC 7386 merge-patch of a token: an absent field keeps its value, null clears it. The type is fixed; the ' +
    'result is validated as `createToken` validates.',
  fields: (t) => ({
    data: t.field({
      type: 'JSON',
      required: false,
      description:
        'Merged into the data: object keys are replaced one by one (null removes one), anything else replaces the ' +
        "data whole: a card's `{ expiration_year: 2031 }` changes just that.",
    }),
    metadata: t.field({
      type: 'JSONObject',
      required: false,
      description: 'Merged into the metadata key by key (a null value removes the key); null clears it all.',
    }),
    containers: t.stringList({
      required: false,
      description: "Replaces the containers; null gives back the type's default container.",
    }),
    expiresAt: t.field({
      type: 'DateTime',
      required: false,
      description: 'Replaces the expiry, which must be in the future; null: the token never expires.',
    }),
  }),
});

const transactionIdArg = (description: string) => ({ type: 'UUID' as const, required: false, description });

builder.queryField('token', (t) =>
  t.field({
    type: TokenRef,
    nullable: true,
    description:
      'A token of the tenant by id; null when there is none, it expired, it was created in a transaction not yet ' +
      "committed (unless read in that transaction), or it is another tenant's. FORBIDDEN for a token the " +
      "application's `tokenContainers` do not cover.",
    authScopes: { permission: 'token:read' },
    args: {
      id: t.arg({ type: 'UUID', required: true, description: 'The token id.' }),
      transactionId: t.arg(
        transactionIdArg(
          'Read inside this open transaction (sees its pending writes); defaults to the BT-TRANSACTION-ID header.',
        ),
      ),
    },
    resolve: async (_root, { id, transactionId }, context) =>
      (await context.services.tokens.token(principalOf(context), id, transactionId ?? context.transactionIdHeader)) ??
      null,
  }),
);

builder.queryField('tokens', (t) =>
  t.connection(
    {
      type: TokenRef,
      description:
        "The tenant's tokens, oldest first, narrowed by every filter given: all of them a `token(id)` read would " +
        'return (live, committed or pending in the transaction, with its pending changes). Find the tokens of one ' +
        'card by its `fingerprint`, or those tagged with some `metadata`. An application with `tokenContainers` ' +
        'lists only the tokens they cover.',
      authScopes: { permission: 'token:read' },
      args: {
        ids: t.arg({ type: ['UUID'], description: `Only these tokens (at most ${MAX_LISTED_IDS} ids).` }),
        type: t.arg({ type: TokenTypeEnum, description: 'Only tokens of this type.' }),
        fingerprint: t.arg.string({
          description: 'Only tokens with this fingerprint: equal data of the same type (see `Token.fingerprint`).',
        }),
        metadata: t.arg({
          type: 'JSONObject',
          description:
            'Only tokens whose metadata has every one of these keys with exactly this value (string, number, ' +
            'boolean or null).',
        }),
        container: t.arg.string({
          description: 'Only tokens with this container or one below it: `/pci/` matches `/pci/high/`.',
        }),
        transactionId: t.arg(
          transactionIdArg(
            'List inside this open transaction (sees its pending writes); defaults to the BT-TRANSACTION-ID header.',
          ),
        ),
      },
      resolve: async (_root, args, context) => {
        const principal = principalOf(context);
        const page = pageRequest(args, context.services.config.limits.pageSize);
        const filter = {
          ids: args.ids,
          type: args.type,
          fingerprint: args.fingerprint,
          metadata: args.metadata,
          container: args.container,
        };
        const transactionId = args.transactionId ?? context.transactionIdHeader;
        const result = await context.services.tokens.listTokens(principal, filter, page, transactionId);
        return toConnection(result, page.afterId !== null, () =>
          context.services.tokens.countTokens(principal, filter, transactionId),
        );
      },
    },
    {
      name: 'TokenConnection',
      description: 'A page of tokens.',
      edgesField: { description: 'The tokens of this page, each with its cursor.' },
      fields: totalCountFields('Number of tokens matching the filters (computed only when selected).'),
    },
    {
      name: 'TokenEdge',
      description: 'A token in a page of tokens.',
      nodeField: { description: 'The token.' },
    },
  ),
);

builder.mutationField('createToken', (t) =>
  t.field({
    type: TokenRef,
    description:
      'Validates, encrypts and stores a token. Public applications may call this (`token:create`). An application ' +
      'with `tokenContainers` may create only tokens they cover (FORBIDDEN otherwise).',
    authScopes: { permission: 'token:create' },
    errors: {
      types: [BadRequestError, NotFoundError, ConflictError, ForbiddenError],
      union: { description: 'The created token, or why it was not created.' },
    },
    args: {
      input: t.arg({ type: CreateTokenInput, required: true, description: 'The token.' }),
      transactionId: t.arg(
        transactionIdArg(
          'Create inside this open transaction: invisible to others until commit, removed on rollback. Defaults to ' +
            'the BT-TRANSACTION-ID header.',
        ),
      ),
    },
    resolve: (_root, { input, transactionId }, context) =>
      context.services.tokens.createToken(principalOf(context), input, transactionId ?? context.transactionIdHeader),
  }),
);

const TokenizePayload = builder.objectRef<{ tokens: unknown }>('TokenizePayload').implement({
  description: 'What `tokenize` created.',
  fields: (t) => ({
    tokens: t.field({
      type: 'JSON',
      nullable: true,
      description: 'The request in the same shape, each tokenized value replaced by the id of its new token.',
      resolve: (payload) => payload.tokens,
    }),
  }),
});

builder.mutationField('tokenize', (t) =>
  t.field({
    type: TokenizePayload,
    description:
      "Creates the tokens a nested request describes, as a formula's `tokenize` block does (BT's Tokenize): a " +
      'member `{ type, data, metadata?, containers?, expiresAt? }` becomes a token of that type, any other object ' +
      'is walked, and any other value (string, number, boolean, array) becomes a TOKEN holding it. All or nothing: ' +
      `every token is validated as \`createToken\` validates (errors keyed by path, \`request.card.data.number\`) ` +
      'before any is stored, at most MAX_TOKENS_PER_REQUEST (100 by default) per request. Needs `token:create`; an application with `tokenContainers` ' +
      'may create only tokens they cover (FORBIDDEN).',
    authScopes: { permission: 'token:create' },
    errors: {
      types: [BadRequestError, NotFoundError, ConflictError, ForbiddenError],
      union: { description: 'The created tokens, or why none was created.' },
    },
    args: {
      request: t.arg({ type: 'JSON', required: true, description: 'The values to tokenize, at any depth.' }),
      transactionId: t.arg(
        transactionIdArg(
          'Create inside this open transaction: invisible to others until commit, removed on rollback. Defaults to ' +
            'the BT-TRANSACTION-ID header.',
        ),
      ),
    },
    resolve: async (_root, { request, transactionId }, context) => ({
      tokens: await context.services.tokens.tokenize(
        principalOf(context),
        request,
        transactionId ?? context.transactionIdHeader,
      ),
    }),
  }),
);

builder.mutationField('deleteToken', (t) =>
  t.field({
    type: TokenRef,
    description:
      'Deletes a token and returns it as it was. In a transaction the delete happens on commit; a token held by ' +
      'another open transaction cannot be deleted (CONFLICT). An application whose `tokenContainers` do not cover ' +
      'the token may not delete it (FORBIDDEN).',
    authScopes: { permission: 'token:delete' },
    errors: {
      types: [NotFoundError, ConflictError, ForbiddenError],
      union: { description: 'The deleted token as it was, or why it was not deleted.' },
    },
    args: {
      id: t.arg({ type: 'UUID', required: true, description: 'The token id.' }),
      transactionId: t.arg(
        transactionIdArg('Delete inside this open transaction (on commit). Defaults to the BT-TRANSACTION-ID header.'),
      ),
    },
    resolve: (_root, { id, transactionId }, context) =>
      context.services.tokens.deleteToken(principalOf(context), id, transactionId ?? context.transactionIdHeader),
  }),
);

builder.mutationField('updateToken', (t) =>
  t.field({
    type: TokenRef,
    description:
      'Changes a token (a merge-patch, see `UpdateTokenInput`) and returns its new version; its data is encrypted ' +
      'again and its mask and fingerprint recomputed. In a transaction the change is seen inside it at once and ' +
      'by everyone on commit; a token held by another open transaction cannot be changed (CONFLICT). An ' +
      'application whose `tokenContainers` do not cover the token may not change it, nor move it to containers ' +
      'they do not cover (FORBIDDEN).',
    authScopes: { permission: 'token:update' },
    errors: {
      types: [BadRequestError, NotFoundError, ConflictError, ForbiddenError],
      union: { description: 'The token as changed, or why it was not changed.' },
    },
    args: {
      id: t.arg({ type: 'UUID', required: true, description: 'The token id.' }),
      input: t.arg({ type: UpdateTokenInput, required: true, description: 'What to change.' }),
      transactionId: t.arg(
        transactionIdArg(
          'Change inside this open transaction (for everyone on commit). Defaults to the BT-TRANSACTION-ID header.',
        ),
      ),
    },
    resolve: (_root, { id, input, transactionId }, context) =>
      context.services.tokens.updateToken(
        principalOf(context),
        id,
        input,
        transactionId ?? context.transactionIdHeader,
      ),
  }),
);
