import { v7 as uuidv7 } from 'uuid';

/** New row ids are UUIDv7: unique like v4, but ordered by creation time, which keyset pagination relies on. */
export function newId(): string {
  return uuidv7();
}
