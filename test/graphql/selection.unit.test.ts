import { type FieldNode, type FragmentDefinitionNode, type GraphQLResolveInfo, Kind, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { selectsPath } from '../../src/graphql/selection.ts';

/** The parts of a resolver's info selectsPath reads, for the operation's first root field. */
function infoOf(document: string): GraphQLResolveInfo {
  const parsed = parse(document);
  const operation = parsed.definitions.find((d) => d.kind === Kind.OPERATION_DEFINITION);
  const fragments = Object.fromEntries(
    parsed.definitions
      .filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION)
      .map((fragment) => [fragment.name.value, fragment]),
  );
  const field = operation?.selectionSet.selections[0] as FieldNode;
  return { fieldNodes: [field], fragments } as unknown as GraphQLResolveInfo;
}

const FORMULA = ['edges', 'node', 'formula'];

describe('selectsPath', () => {
  it('finds a path written out, under an alias, or as a leaf', () => {
    expect(selectsPath(infoOf('{ reactors { edges { node { formula { id } } } } }'), FORMULA)).toBe(true);
    expect(selectsPath(infoOf('{ reactors { e: edges { n: node { f: formula { id } } } } }'), FORMULA)).toBe(true);
    expect(selectsPath(infoOf('{ reactors { edges { node { id } } } }'), ['edges', 'node', 'id'])).toBe(true);
  });

  it('finds it through named and inline fragments, at any level', () => {
    const named = `{ reactors { ...Page } }
      fragment Page on ReactorConnection { edges { node { ...Reactor } } }
      fragment Reactor on Reactor { id ... on Reactor { formula { name } } }`;
    expect(selectsPath(infoOf(named), FORMULA)).toBe(true);
  });

  it('does not find what is not there, or sits elsewhere', () => {
    expect(selectsPath(infoOf('{ reactors { edges { node { id name } } } }'), FORMULA)).toBe(false);
    expect(selectsPath(infoOf('{ reactors { totalCount } }'), FORMULA)).toBe(false);
    expect(selectsPath(infoOf('{ reactors { edges { formula: cursor } } }'), FORMULA)).toBe(false);
    expect(selectsPath(infoOf('{ reactors { edges { node { application { formula: id } } } } }'), FORMULA)).toBe(false);
  });
});
