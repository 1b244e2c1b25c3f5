/**
 * Operator mistakes at start-up as one line each (no stack trace): a port in use, an address
 * that is not this machine's, unreadable or mismatched TLS files. Used by `cli.ts`.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** A start-up failure whose message is complete and meant for the operator. */
export class OperatorError extends Error {
  override readonly name = 'OperatorError';
}

/** Which flags name the listeners, for messages. */
export interface ListenFlags {
  readonly port: number;
  readonly metricsPort?: number;
}

/**
 * One line for an error thrown while starting: listen errors (`EADDRINUSE`, `EACCES`,
 * `EADDRNOTAVAIL`, `ENOTFOUND`) name the address and the flag to change; anything else gives
 * its own first line.
 */
export function startupMessage(e: unknown, flags: ListenFlags): string {
  const err = e as NodeJS.ErrnoException & { address?: string; port?: number; hostname?: string };
  const port = err.port;
  const flag = port !== undefined && port === flags.metricsPort && port !== flags.port ? '--metrics-port' : '--port';
  const where = `${err.address ?? err.hostname ?? '?'}${port === undefined ? '' : `:${port}`}`;
  switch (err?.code) {
    case 'EADDRINUSE':
      return `${where} is already in use (another relay, or another program): stop it, or choose another ${flag}`;
    case 'EACCES':
      if (err.syscall === 'listen') return `no permission to listen on ${where} (ports below 1024 need privileges): choose another ${flag}`;
      break;
    case 'EADDRNOTAVAIL':
      return `${err.address ?? '?'} is not an address of this machine: check --host${flag === '--metrics-port' ? ' / --metrics-host' : ''}`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot resolve ${err.hostname ?? err.address ?? 'the host'}: check --host`;
    default:
  }
  const message = e instanceof Error ? e.message : String(e);
  return message.split('\n')[0] ?? 'error';
}

function readFlagFile(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a folder' : (code ?? 'unreadable');
    throw new OperatorError(`cannot read ${flag} ${file}: ${why}`);
  }
}

/** The certificate's expiry, for a warning. */
export interface LoadedTls {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** When the (first) certificate stops being valid. */
  readonly validTo: Date;
}

/**
 * Reads and checks `--tls-cert` / `--tls-key`: both readable, a PEM certificate, a PEM private
 * key (not encrypted), and the key belongs to the certificate.
 * @throws OperatorError naming the flag and file.
 */
export function loadTls(certFile: string, keyFile: string): LoadedTls {
  const cert = readFlagFile('--tls-cert', certFile);
  const key = readFlagFile('--tls-key', keyFile);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new OperatorError(`--tls-cert ${certFile} is not a PEM certificate`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new OperatorError(`--tls-key ${keyFile} is not a PEM private key (or it is encrypted)`);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new OperatorError(`--tls-key ${keyFile} is not the key of --tls-cert ${certFile} (they do not match)`);
  }
  return { cert, key, validTo: new Date(x509.validTo) };
}
