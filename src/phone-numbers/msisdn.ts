/**
 * Phone numbers (MSISDNs) as people write them, turned into E.164 (`+79161234567`).
 * Only digits, spaces, `+`, `-`, `.`, `(`, `)` and a `tel:` prefix are accepted before parsing,
 * so nothing else (quotes, braces, commas, pipes, newlines...) can ever be carried into a number.
 * Validity is checked against the full numbering plan metadata (libphonenumber-js/max).
 */
import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js/max';

const allowedSpelling = /^(?:tel:)? *\+?[\d ().-]{4,30}$/;
/** What a normalised number always looks like; a dial string is built only from text matching this. */
export const E164_PATTERN = '^\\+[1-9][0-9]{6,14}$';
const e164 = new RegExp(E164_PATTERN);

export type MsisdnResult = { ok: true; e164: string } | { ok: false; reason: string };

export function normalizeMsisdn(input: string, defaultCountry: string): MsisdnResult {
  const text = input.trim();
  if (!allowedSpelling.test(text)) {
    return { ok: false, reason: 'must be a phone number: digits, optionally a leading +, spaces, dashes, dots or parentheses' };
  }
  let candidate = text.replace(/^tel: */, '');
  // International prefix 00 (most of the world) written instead of +.
  if (/^00[1-9]/.test(candidate.replace(/[ ().-]/g, ''))) candidate = `+${candidate.replace(/[ ().-]/g, '').slice(2)}`;
  const parsed = parsePhoneNumberFromString(candidate, { defaultCountry: defaultCountry as CountryCode, extract: false });
  if (!parsed || !parsed.isValid()) {
    return { ok: false, reason: 'is not a valid phone number (E.164, e.g. +79161234567)' };
  }
  const number = parsed.number;
  if (!e164.test(number)) return { ok: false, reason: 'is not a valid phone number (E.164, e.g. +79161234567)' };
  return { ok: true, e164: number };
}

/** True only for text already in strict E.164 form. */
export function isE164(text: string): boolean {
  return e164.test(text);
}
