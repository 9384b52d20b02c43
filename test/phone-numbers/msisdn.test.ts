/**
 * Phone numbers as people write them must come out as strict E.164, and nothing that is not a
 * phone number (quotes, separators, FreeSWITCH channel-variable syntax, control characters,
 * look-alike digits) may ever come out at all: these strings end up in dial strings.
 */
import { describe, expect, it } from 'vitest';
import { isE164, normalizeMsisdn } from '../../src/phone-numbers/msisdn.js';

const STRICT_E164 = /^\+[1-9]\d{6,14}$/;

describe('normalizeMsisdn accepts the usual spellings', () => {
  it.each([
    ['+7 916 123-45-67', '+79161234567'],
    ['8 (916) 123-45-67', '+79161234567'],
    ['89161234567', '+79161234567'],
    ['79161234567', '+79161234567'],
    ['9161234567', '+79161234567'],
    ['+7(916)1234567', '+79161234567'],
    ['+7 (916) 123 45 67', '+79161234567'],
    ['00 7 916 123 45 67', '+79161234567'],
    ['0079161234567', '+79161234567'],
    ['tel:+79161234567', '+79161234567'],
    ['tel: +7 916 1234567', '+79161234567'],
    ['+7.916.123.45.67', '+79161234567'],
    ['  +79161234567  ', '+79161234567'],
    ['8 800 555 35 35', '+78005553535'],
    ['+44 20 7946 0958', '+442079460958'],
    ['+44 (0) 20 7946 0958', '+442079460958'],
    ['0044 20 7946 0958', '+442079460958'],
    ['+1 650 253 0000', '+16502530000'],
    ['+1-650-253-0000', '+16502530000'],
    ['+380 44 123 4567', '+380441234567'],
    ['+49 30 123456', '+4930123456'],
    ['+86 10 1234 5678', '+861012345678'],
  ])('%j (RU) is %s', (input, e164) => {
    expect(normalizeMsisdn(input, 'RU')).toEqual({ ok: true, e164 });
  });

  it('reads a national number in the default country it is given', () => {
    expect(normalizeMsisdn('020 7946 0958', 'GB')).toEqual({ ok: true, e164: '+442079460958' });
    expect(normalizeMsisdn('+7 916 123-45-67', 'GB')).toEqual({ ok: true, e164: '+79161234567' });
    // The same national spelling is not a Russian number.
    expect(normalizeMsisdn('020 7946 0958', 'RU').ok).toBe(false);
  });

  it('gives back a number already in E.164 unchanged', () => {
    for (const e164 of ['+79161234567', '+442079460958', '+16502530000', '+380441234567']) {
      expect(normalizeMsisdn(e164, 'RU')).toEqual({ ok: true, e164 });
      expect(normalizeMsisdn(e164, 'GB')).toEqual({ ok: true, e164 });
    }
  });
});

describe('normalizeMsisdn refuses what is not a phone number', () => {
  it.each([
    ['too short', '12345'],
    ['a three-digit service number', '112'],
    ['too long (19 digits)', '+7916123456789012345'],
    ['too long for the numbering plan', '+7 916 123 45 67 890'],
    ['too long a spelling', '1'.repeat(31)],
    ['letters', '+7916abc4567'],
    ['a vanity number', '+1 (800) FLOWERS'],
    ['full-width digits', '＋７９１６１２３４５６７'],
    ['Arabic-Indic digits', '+٧٩١٦١٢٣٤٥٦٧'],
    ['a shell command after it', '+79161234567;rm -rf'],
    ['FreeSWITCH channel variables before it', '{origination_caller_id_number=1}+79161234567'],
    ['square brackets', '+7916[1]234567'],
    ['a comma', '+7916,1234567'],
    ['a pipe', '+7916|1234567'],
    ['an ampersand', '+7916&1234567'],
    ['single quotes', "'+79161234567'"],
    ['double quotes', '"+79161234567"'],
    ['a backslash', '+7916\\1234567'],
    ['a slash (a dial string)', 'sofia/gateway/x/+79161234567'],
    ['a percent escape', '+7916%201234567'],
    ['a star', '+7916*1234567'],
    ['a hash', '+7916123456#'],
    ['a newline inside', '+7916\n1234567'],
    ['a tab inside', '+7916\t1234567'],
    ['a NUL after it', '+79161234567\u0000'],
    ['a no-break space inside', '+7916\u00a01234567'],
    ['a zero-width space inside', '+7916\u200b1234567'],
    ['a right-to-left override before it', '\u202e+79161234567'],
    ['a soft hyphen inside', '+7\u00ad9161234567'],
    ['an en dash inside', '+7\u20139161234567'],
    ['country code 0', '+09161234567'],
    ['country code 0 with spaces', '+0 916 123 45 67'],
    ['an unassigned country code', '+999 123 456 789'],
    ['two plus signs', '++79161234567'],
    ['a plus in the middle', '7+9161234567'],
    ['an empty string', ''],
    ['only spaces', '   '],
    ['only a plus', '+'],
    ['an empty tel: URI', 'tel:'],
    ['a doubled tel: prefix', 'tel:tel:+79161234567'],
  ])('refuses %s', (_what, input) => {
    const result = normalizeMsisdn(input, 'RU');
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(/\S/);
  });
});

describe('isE164', () => {
  it.each(['+79161234567', '+442079460958', '+1234567', '+123456789012345'])('accepts %j', (text) => {
    expect(isE164(text)).toBe(true);
  });

  it.each([
    '79161234567',
    '+123456',
    '+1234567890123456',
    '+0123456789',
    '+7 916 1234567',
    '+7-916-123-45-67',
    ' +79161234567',
    '+79161234567\n',
    '+79161234567\u0000',
    '++79161234567',
    '+7916123456a',
    '＋７９１６１２３４５６７',
    '+',
    '',
  ])('refuses %j', (text) => {
    expect(isE164(text)).toBe(false);
  });
});

/** mulberry32: a small seeded generator, so every run checks the same strings. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

const SEPARATORS = ['', '', '', ' ', '-', '.', '(', ')'];

/** A number written with random separators between random runs of its digits. */
function spell(random: () => number, digits: string): string {
  let out = '';
  for (const digit of digits) out += digit + (random() < 0.3 ? pick(random, SEPARATORS) : '');
  return out;
}

describe('whatever normalizeMsisdn accepts is strict E.164', () => {
  it('for random strings of the characters a phone number may be written with', () => {
    const random = seeded(20240611);
    const alphabet = '0123456789       ++--..(())'.split('');
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      const length = 1 + Math.floor(random() * 34);
      let text = '';
      for (let j = 0; j < length; j++) text += pick(random, alphabet);
      if (random() < 0.1) text = `tel:${text}`;
      const result = normalizeMsisdn(text, pick(random, ['RU', 'GB', 'US', 'DE', 'UA']));
      if (result.ok) {
        accepted++;
        expect(result.e164, JSON.stringify(text)).toMatch(STRICT_E164);
        expect(isE164(result.e164)).toBe(true);
      }
    }
    // Random text is rarely a real number, but some must get through or this checks nothing.
    expect(accepted).toBeGreaterThan(50);
  });

  it('for random spellings of real-looking numbers, which also re-normalise to themselves', () => {
    const random = seeded(7);
    let accepted = 0;
    for (let i = 0; i < 5_000; i++) {
      let national = '9';
      for (let j = 0; j < 9; j++) national += String(Math.floor(random() * 10));
      const prefix = pick(random, ['+7', '8', '7', '', '00 7', 'tel:+7', '+7 (', '8 (']);
      const text = `${prefix}${spell(random, national)}`;
      const result = normalizeMsisdn(text, 'RU');
      if (!result.ok) continue;
      accepted++;
      expect(result.e164, JSON.stringify(text)).toMatch(STRICT_E164);
      // Every Russian mobile spelling means +7 and the ten national digits.
      expect(result.e164, JSON.stringify(text)).toBe(`+7${national}`);
      expect(normalizeMsisdn(result.e164, 'RU')).toEqual(result);
    }
    expect(accepted).toBeGreaterThan(4_000);
  });

  it('never lets anything but digits, separators, a leading + or tel: through', () => {
    const random = seeded(99);
    const hostile = [...'0123456789+-.() ', ';', ',', '|', '&', '{', '}', '[', ']', '=', "'", '"', '\\', '/', '\n', '\t', '\r', '\u0000', '%', '*', '#', 'a', 'x', '\u00a0', '\u200b', '７', '٣', '$', '`', '<', '>'];
    const allowed = /^(?:tel:)? *\+?[\d ().-]*$/;
    let refused = 0;
    for (let i = 0; i < 20_000; i++) {
      // A valid number with one to three hostile characters spliced in.
      let text = pick(random, ['+79161234567', '8 (916) 123-45-67', '+44 20 7946 0958', 'tel:+16502530000']);
      const insertions = 1 + Math.floor(random() * 3);
      for (let j = 0; j < insertions; j++) {
        const at = Math.floor(random() * (text.length + 1));
        text = text.slice(0, at) + pick(random, hostile) + text.slice(at);
      }
      // Refusing is an answer; throwing would fail the test.
      const result = normalizeMsisdn(text, 'RU');
      if (result.ok) {
        expect(result.e164, JSON.stringify(text)).toMatch(STRICT_E164);
        // Surrounding whitespace is trimmed away; inside, only the permitted characters.
        expect(text.trim(), JSON.stringify(text)).toMatch(allowed);
      } else {
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(5_000);
  });
});
