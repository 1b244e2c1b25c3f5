import { ParleyError } from '@parley/protocol/verify';

/** Errors that mean "try again later" rather than "this input is bad". */
export function isTransient(e: unknown): boolean {
  return e instanceof ParleyError && ['ENCLAVE_UNAVAILABLE', 'TRANSPORT', 'RATE_LIMITED', 'STORAGE_QUOTA'].includes(e.code);
}
