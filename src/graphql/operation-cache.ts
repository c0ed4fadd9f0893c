import type { Plugin } from '@envelop/core';
import type { DocumentNode, GraphQLSchema, ValidationRule } from 'graphql';
import { LRUCache } from 'lru-cache';

/**
 * The parse and validation caches, in place of Yoga's own (`parserAndValidationCache: false` in yoga.ts), with the
 * same behaviour: a query string seen before is not parsed again (a string that failed to parse fails again with
 * the same error), and a document validated before against the same schema and the same rules is not validated
 * again, whatever the outcome was.
 *
 * Why not Yoga's: it keys validation results by the rules' names, `rules.map((rule) => rule.name).join(',')`,
 * rebuilt on every request (about 30 rules with graphql-armor's), and its LRU caches carry a one-hour TTL that
 * costs a clock read and bookkeeping on every hit. Profiled on `{ __typename }`, those two were 15-20% of
 * `getResultForParams` (BENCHMARKS.md). Here a rule list is matched by the identity of its rules (the list is
 * copied per request, the rules are not), the last list is remembered so a request compares ~30 pointers, and
 * the caches are plain LRUs: a parsed document never goes stale.
 *
 * Must come after every plugin that adds validation rules (graphql-armor), as Yoga's did: it sees the list they
 * built.
 */
export function useOperationCache(options: { max?: number } = {}): Plugin {
  const max = options.max ?? 1024;
  const documents = new LRUCache<string, DocumentNode>({ max });
  const parseErrors = new LRUCache<string, Error>({ max });
  const results = new ValidationResults();

  return {
    onParse({ params, setParsedDocument, setParseFn }) {
      const source = params.source.toString();
      const document = documents.get(source);
      if (document) {
        setParsedDocument(document);
        return;
      }
      const error = parseErrors.get(source);
      if (error) {
        // Failed again as a parse, so that the other plugins' after-parse hooks see the error as they did the first
        // time: Yoga's sets GRAPHQL_PARSE_FAILED on HTTP only, so an error first cached by a graphql-ws operation
        // would otherwise reach HTTP clients without its code.
        setParseFn(() => {
          throw error;
        });
        return;
      }
      return ({ result }) => {
        if (result === null || result === undefined) return;
        if (result instanceof Error) parseErrors.set(source, result);
        else documents.set(source, result);
      };
    },
    onValidate({ params: { schema, documentAST, rules }, setResult }) {
      if (!schema) return;
      const byDocument = results.forRules(rules, schema);
      const cached = byDocument.get(documentAST);
      if (cached) {
        setResult(cached);
        return;
      }
      return ({ result }) => {
        if (result) byDocument.set(documentAST, result);
      };
    },
  };
}

const MAX_RULE_LISTS = 8;

type ResultsByDocument = WeakMap<DocumentNode, readonly Error[]>;

/**
 * Validation results per rule list (by rule identity) and schema. Rule lists are few: in practice exactly one. A
 * plugin that made new rule functions per request would defeat the cache (as it would Yoga's only if it also
 * renamed them), so the lists kept are capped.
 */
class ValidationResults {
  private readonly lists: { rules: readonly ValidationRule[]; bySchema: WeakMap<GraphQLSchema, ResultsByDocument> }[] =
    [];
  private last: (typeof this.lists)[number] | undefined;

  forRules(rules: readonly ValidationRule[] | undefined, schema: GraphQLSchema): ResultsByDocument {
    const wanted = rules ?? [];
    let entry = this.last && sameRules(this.last.rules, wanted) ? this.last : undefined;
    entry ??= this.lists.find((candidate) => sameRules(candidate.rules, wanted));
    if (!entry) {
      entry = { rules: [...wanted], bySchema: new WeakMap() };
      if (this.lists.push(entry) > MAX_RULE_LISTS) this.lists.shift();
    }
    this.last = entry;
    let byDocument = entry.bySchema.get(schema);
    if (!byDocument) {
      byDocument = new WeakMap();
      entry.bySchema.set(schema, byDocument);
    }
    return byDocument;
  }
}

function sameRules(a: readonly ValidationRule[], b: readonly ValidationRule[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
