import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface LabelledFile {
  path: string;
  isSpam: boolean;
}

/**
 * The message files of a directory (not recursive), sorted by name so that every run reads them
 * in the same order: training and the cross-validation folds depend on it. Hidden files and
 * sub-directories are skipped; any other file is taken as one RFC 5322 message.
 */
export async function messageFiles(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw new Error(`cannot read the message directory ${dir}: ${(err as Error).message}`);
  }
  return entries
    .filter((e) => e.isFile() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort()
    .map((name) => join(dir, name));
}

export async function labelledFiles(spamDir: string, hamDir: string): Promise<LabelledFile[]> {
  const [spam, ham] = await Promise.all([messageFiles(spamDir), messageFiles(hamDir)]);
  return [...spam.map((path) => ({ path, isSpam: true })), ...ham.map((path) => ({ path, isSpam: false }))];
}

export async function readMessage(path: string): Promise<Buffer> {
  return readFile(path);
}
