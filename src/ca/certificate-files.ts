// Certificate files for readers such as grpc-js-xds's file_watcher: cert-chain.pem, key.pem (0600), root-cert.pem.
//
// Why a generation directory: a reader opens the three files one by one, so replacing them one by one (however
// ordered: key first, cert first, each atomically) leaves an instant where a reader can get a new certificate with
// an old key. Instead each generation is written whole into its own new directory `..gen-*`, and the single symlink
// `..data` is switched to it with one rename(2); the top-level names are fixed symlinks through `..data`
// (the layout of Kubernetes' AtomicWriter). Every open therefore sees one complete generation. Two separate opens can
// still straddle a switch (a reader has no way to open two files atomically), and grpc-js-xds opens them together in
// one tick, once per refresh interval, against a switch once per half-life. readCertificateFiles() closes even that:
// it resolves `..data` once and reads all three files from that one immutable generation. The previous generation is
// kept until the next switch so a reader that resolved it can finish.
import { chmod, lstat, mkdir, mkdtemp, open, readFile, readdir, readlink, rename, rm, symlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CaError } from './ca-error.ts';
import { MAX_PEM_BYTES } from './pem.ts';

export const CERT_CHAIN_FILE = 'cert-chain.pem';
export const KEY_FILE = 'key.pem';
export const ROOT_CERT_FILE = 'root-cert.pem';
const DATA_LINK = '..data';
const GEN_PREFIX = '..gen-';
const FILES = [CERT_CHAIN_FILE, KEY_FILE, ROOT_CERT_FILE] as const;

export interface CertificateFiles {
  certChainPem: string;
  keyPem: string;
  rootCertPem: string;
}

/** Publishes a new generation of the three files in dir; see the module comment for the guarantees. */
export async function writeCertificateFiles(dir: string, files: CertificateFiles): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const gen = await mkdtemp(join(dir, GEN_PREFIX));
  await chmod(gen, 0o755);
  await writeNew(join(gen, CERT_CHAIN_FILE), files.certChainPem, 0o644);
  await writeNew(join(gen, KEY_FILE), files.keyPem, 0o600);
  await writeNew(join(gen, ROOT_CERT_FILE), files.rootCertPem, 0o644);
  const previous = await currentGeneration(dir);
  await replaceSymlink(join(dir, DATA_LINK), basename(gen));
  for (const f of FILES) {
    const target = join(DATA_LINK, f);
    const path = join(dir, f);
    if ((await linkTarget(path)) !== target) await replaceSymlink(path, target);
  }
  // Keep the new and the previous generation; remove older ones.
  for (const name of await readdir(dir)) {
    if (name.startsWith(GEN_PREFIX) && name !== basename(gen) && name !== previous) await rm(join(dir, name), { recursive: true, force: true });
  }
}

/** Reads the three files of one generation (never a mix of two). */
export async function readCertificateFiles(dir: string): Promise<CertificateFiles> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const gen = await currentGeneration(dir);
    if (!gen) throw new CaError('INVALID_STATE', `${dir} holds no certificate generation`);
    try {
      const [certChainPem, keyPem, rootCertPem] = await Promise.all(FILES.map((f) => readBounded(join(dir, gen, f))));
      return { certChainPem: certChainPem!, keyPem: keyPem!, rootCertPem: rootCertPem! };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // a generation removed under us: look again
    }
  }
  throw new CaError('INVALID_STATE', `${dir} kept changing while being read`);
}

async function currentGeneration(dir: string): Promise<string | undefined> {
  return linkTarget(join(dir, DATA_LINK));
}

async function linkTarget(path: string): Promise<string | undefined> {
  try {
    return await readlink(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EINVAL') return undefined;
    throw err;
  }
}

/** Points path at target with one rename, replacing whatever was there (a file from an older layout, or a symlink). */
async function replaceSymlink(path: string, target: string): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await symlink(target, tmp);
  const st = await lstat(path).catch(() => undefined);
  if (st?.isDirectory()) throw new CaError('INVALID_STATE', `${path} is a directory`);
  await rename(tmp, path);
}

async function writeNew(path: string, data: string, mode: number): Promise<void> {
  const fh = await open(path, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function readBounded(path: string): Promise<string> {
  const data = await readFile(path, 'utf8');
  if (data.length > MAX_PEM_BYTES) throw new CaError('INVALID_STATE', `${path} is larger than ${MAX_PEM_BYTES} bytes`);
  return data;
}
