/**
 * Hand-written validators for every message that crosses the host ⇄ enclave boundary.
 *
 * A validator takes `unknown` and returns a fresh value holding only the fields it knows, or
 * throws `ParleyError('MALFORMED_MESSAGE')`. Objects are strict: an unknown key (an own
 * `__proto__` included) is refused, and so is any object whose prototype is not
 * `Object.prototype` or `null` (structured clone only ever produces those). Error messages name
 * the field, never its value: values may be ciphertext, and on the enclave side a careless
 * message could quote plaintext.
 */
import { ParleyError } from '@parley/protocol/errors';

/** A validator: returns the checked (fresh) value or throws `MALFORMED_MESSAGE`. */
export type Check<T> = (value: unknown, path: string) => T;

/** The value type a validator produces. */
export type Checked<C> = C extends Check<infer T> ? T : never;

export function fail(path: string, what: string): never {
  throw new ParleyError('MALFORMED_MESSAGE', `${path}: ${what}`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

export const str =
  (opts: { max: number; min?: number; pattern?: RegExp }): Check<string> =>
  (value, path) => {
    if (typeof value !== 'string') fail(path, 'expected a string');
    if (value.length < (opts.min ?? 0) || value.length > opts.max) fail(path, `expected ${opts.min ?? 0}..${opts.max} chars`);
    if (opts.pattern && !opts.pattern.test(value)) fail(path, 'has the wrong format');
    return value;
  };

export const int =
  (min: number, max: number): Check<number> =>
  (value, path) => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) fail(path, 'expected an integer');
    if (value < min || value > max) fail(path, `expected ${min}..${max}`);
    return value;
  };

export const bool: Check<boolean> = (value, path) => {
  if (typeof value !== 'boolean') fail(path, 'expected a boolean');
  return value;
};

export const literal =
  <L extends string | number | boolean>(lit: L): Check<L> =>
  (value, path) => {
    if (value !== lit) fail(path, `expected ${JSON.stringify(lit)}`);
    return lit;
  };

/** One of a few string literals. */
export const oneOf =
  <L extends string>(...values: readonly L[]): Check<L> =>
  (value, path) => {
    if (typeof value !== 'string' || !(values as readonly string[]).includes(value)) fail(path, `expected one of ${values.map((v) => JSON.stringify(v)).join(', ')}`);
    return value as L;
  };

/** A `Uint8Array` (a Node `Buffer` is one) of `min..max` bytes; copied so later mutation can't race a check. */
export const bytes =
  (min: number, max: number = min): Check<Uint8Array> =>
  (value, path) => {
    if (!(value instanceof Uint8Array)) fail(path, 'expected a Uint8Array');
    if (value.length < min || value.length > max) fail(path, min === max ? `expected ${min} bytes` : `expected ${min}..${max} bytes`);
    return new Uint8Array(value);
  };

export const arrayOf =
  <T>(item: Check<T>, max: number): Check<readonly T[]> =>
  (value, path) => {
    if (!Array.isArray(value) || Object.getPrototypeOf(value) !== Array.prototype) fail(path, 'expected an array');
    if (value.length > max) fail(path, `expected at most ${max} items`);
    const out: T[] = [];
    for (let i = 0; i < value.length; i++) {
      if (!Object.hasOwn(value, i)) fail(`${path}[${i}]`, 'missing');
      out.push(item(value[i], `${path}[${i}]`));
    }
    return out;
  };

export const optional =
  <T>(inner: Check<T>): Check<T | undefined> =>
  (value, path) =>
    value === undefined ? undefined : inner(value, path);

type Shape = Record<string, Check<unknown>>;
type OptionalKeys<S extends Shape> = { [K in keyof S]: undefined extends Checked<S[K]> ? K : never }[keyof S];
type Simplify<T> = { [K in keyof T]: T[K] } & {};
/** Keys whose check may yield `undefined` are optional; the rest are required. */
type ShapeOut<S extends Shape> = Simplify<
  { [K in Exclude<keyof S, OptionalKeys<S>>]: Checked<S[K]> } & { [K in OptionalKeys<S>]?: Checked<S[K]> }
>;

/** A strict object: exactly the keys of `shape` (optional ones may be absent), nothing else. */
export const object =
  <S extends Shape>(shape: S): Check<ShapeOut<S>> =>
  (value, path) => {
    if (!isPlainObject(value)) fail(path, 'expected a plain object');
    for (const key of Reflect.ownKeys(value)) {
      if (typeof key !== 'string' || !Object.hasOwn(shape, key)) fail(path, `unexpected key ${typeof key === 'string' ? JSON.stringify(key.slice(0, 40)) : 'symbol'}`);
    }
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(shape)) {
      const v = shape[key]!(Object.hasOwn(value, key) ? value[key] : undefined, `${path}.${key}`);
      if (v !== undefined) out[key] = v;
    }
    return out as ShapeOut<S>;
  };

/** One of several strict objects, chosen by the literal `type` field. */
export const union =
  <M extends Record<string, Check<unknown>>>(byType: M): Check<Checked<M[keyof M]>> =>
  (value, path) => {
    if (!isPlainObject(value)) fail(path, 'expected a plain object');
    const type = Object.hasOwn(value, 'type') ? value.type : undefined;
    if (typeof type !== 'string' || !Object.hasOwn(byType, type)) fail(`${path}.type`, 'unknown message type');
    return byType[type]!(value, path) as Checked<M[keyof M]>;
  };

/** Anything that is an `ArrayBuffer` of exactly `n` bytes (the transferred sealing secret). */
export const arrayBuffer =
  (n: number): Check<ArrayBuffer> =>
  (value, path) => {
    if (!(value instanceof ArrayBuffer) || value.byteLength !== n) fail(path, `expected an ArrayBuffer of ${n} bytes`);
    return value;
  };
