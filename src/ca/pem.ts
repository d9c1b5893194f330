// PEM helpers: bounded reading of PEM text and splitting it into blocks of one label.
import { readFile, stat } from 'node:fs/promises';
import { CaError } from './ca-error.ts';

/** Upper bound on any PEM document the CA reads (a CSR, a CA certificate file, a key file). */
export const MAX_PEM_BYTES = 64 * 1024;

/** The PEM blocks with the given label (e.g. CERTIFICATE), in order. */
export function pemBlocks(pem: string, label: string): string[] {
  const re = new RegExp(`-----BEGIN ${label}-----[\\s\\S]*?-----END ${label}-----`, 'g');
  return pem.match(re) ?? [];
}

/** Reads a PEM file, refusing files over MAX_PEM_BYTES. */
export async function readPemFile(path: string, what: string): Promise<string> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (err) {
    throw new CaError('INVALID_CA_MATERIAL', `cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (size > MAX_PEM_BYTES) throw new CaError('INVALID_CA_MATERIAL', `${what} ${path} is larger than ${MAX_PEM_BYTES} bytes`);
  return readFile(path, 'utf8');
}
