/** Tidy decoded objects. */

/** Drop keys whose value is undefined, so decoded objects compare and print cleanly. */
export function prune<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}
