/**
 * API keys are 32 random bytes behind a `tig_` tag. Only their SHA-256 is stored (the keys are
 * random, so a slow password hash buys nothing) together with a short prefix used to find the row;
 * the hash is compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const KEY_TAG = 'tig_';
const PREFIX_LENGTH = KEY_TAG.length + 8;

export function generateApiKey(): { key: string; prefix: string; hash: Buffer } {
  const key = `${KEY_TAG}${randomBytes(32).toString('base64url')}`;
  return { key, prefix: keyPrefix(key), hash: hashApiKey(key) };
}

export function keyPrefix(key: string): string {
  return key.slice(0, PREFIX_LENGTH);
}

export function hashApiKey(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

export function sameHash(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Plausible shape of a key, checked before any database lookup. */
export function looksLikeApiKey(text: string): boolean {
  return text.length >= 16 && text.length <= 256 && /^[\x21-\x7e]+$/.test(text);
}
