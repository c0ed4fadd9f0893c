import type { Plugin } from '@envelop/core';
import { costLimitRule } from '@escape.tech/graphql-armor-cost-limit';
import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { maxDirectivesRule } from '@escape.tech/graphql-armor-max-directives';
import { maxTokensPlugin } from '@escape.tech/graphql-armor-max-tokens';
import type { GraphQLError, ValidationContext, ValidationRule } from 'graphql';

/**
 * graphql-armor's limits (depth, aliases, directives, cost, tokens): a public endpoint must not be walked into an
 * expensive query. The same protections, defaults and order as `EnvelopArmorPlugin` with field suggestions left on,
 * but the validation rules are built once. The armor plugins build a new rule function on every request, and a
 * validation cache keyed by rule identity (src/graphql/operation-cache.ts) would then never hit; Yoga's cache
 * keyed rules by name instead, at a cost of its own on every request.
 */
export function useQueryLimits(): Plugin[] {
  // Reported as validation errors rather than thrown out of `validate` (armor's default): a validation error gets
  // Yoga's GRAPHQL_VALIDATION_FAILED (and a 400 where the GraphQL-over-HTTP spec asks for one), and is an `error`
  // message over graphql-ws. Thrown, it came back over HTTP without a code, and closed a graphql-ws socket.
  const report = { propagateOnRejection: false, onReject: [reportRejection] };
  const rules: ValidationRule[] = [
    maxDirectivesRule(report),
    maxAliasesRule({ n: 30, ...report }),
    costLimitRule({ maxCost: 20_000, ...report }),
    maxDepthRule({ n: 12, ...report }),
  ];
  return [
    // Counts tokens while parsing, so a huge document is refused before it is built (armor's default: 1,000).
    maxTokensPlugin({}),
    {
      onValidate({ addValidationRule }) {
        for (const rule of rules) addValidationRule(rule);
      },
    },
  ];
}

function reportRejection(context: ValidationContext | null, error: GraphQLError): void {
  context?.reportError(error);
}
