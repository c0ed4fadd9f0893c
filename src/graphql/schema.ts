import { lexicographicSortSchema } from 'graphql';
import { builder } from './builder.ts';
import { describeGeneratedTypes } from './generated-descriptions.ts';
import './root-types.ts';
import './scalars.ts';
import './error-types.ts';
import '../auth/schema.ts';
import '../auth/tenant-schema.ts';
import '../tokens/schema.ts';
import '../transactions/schema.ts';
import '../formulas/schema.ts';
import '../reactors/schema.ts';
import '../invocations/schema.ts';

export const schema = describeGeneratedTypes(lexicographicSortSchema(builder.toSchema({ sortSchema: false })));
