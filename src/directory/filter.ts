import { FilterParser, type Filter } from 'ldapts';

/**
 * LDAP search filters built from Postfix-style templates. Every value that comes from an
 * address goes through `escapeFilterValue` (RFC 4515): an unescaped `*` turns a lookup into a
 * wildcard search (wrong answers, and a way to overload the directory).
 */

/** Printable ASCII that RFC 4515 lets through unescaped (everything but `*`, `(`, `)`, `\`). */
function isPlain(byte: number): boolean {
  return byte >= 0x20 && byte < 0x7f && byte !== 0x2a && byte !== 0x28 && byte !== 0x29 && byte !== 0x5c;
}

/**
 * RFC 4515 assertion-value escaping: `*`, `(`, `)`, `\`, NUL, control characters and every
 * non-ASCII byte of the UTF-8 encoding become `\XX`.
 */
export function escapeFilterValue(value: string | Buffer): string {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  let out = '';
  for (const byte of bytes) {
    out += isPlain(byte) ? String.fromCharCode(byte) : `\\${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** Splits at the last `@` like Postfix: no `@` means no domain. */
export function splitAddress(address: string): { local: string; domain: string } {
  const at = address.lastIndexOf('@');
  return at < 0 ? { local: address, domain: '' } : { local: address.slice(0, at), domain: address.slice(at + 1) };
}

/** Walks a template, handing each `%x` directive to `expand`; `%%` is a literal percent. */
function expandDirectives(template: string, expand: (directive: string) => string): string {
  let out = '';
  for (let i = 0; i < template.length; i++) {
    const ch = template[i]!;
    if (ch !== '%') {
      out += ch;
      continue;
    }
    const directive = template[i + 1];
    if (directive === undefined) throw new Error(`filter template ends with a lone "%": ${template}`);
    out += directive === '%' ? '%' : expand(directive);
    i++;
  }
  return out;
}

function unknownDirective(template: string, directive: string): never {
  throw new Error(`filter template has unknown directive "%${directive}" (use %s, %u, %d or %%): ${template}`);
}

/**
 * Expands `%s` (full address), `%u` (local part), `%d` (domain) and `%%` with every value
 * RFC 4515-escaped. Throws on an unknown directive.
 */
export function expandFilter(template: string, address: string): string {
  const { local, domain } = splitAddress(address);
  return expandDirectives(template, (d) => {
    switch (d) {
      case 's':
        return escapeFilterValue(address);
      case 'u':
        return escapeFilterValue(local);
      case 'd':
        return escapeFilterValue(domain);
      default:
        return unknownDirective(template, d);
    }
  });
}

/**
 * The "every entry" form of a lookup template for full syncs: each address directive becomes
 * a wildcard, so `(mail=%s)` → `(mail=*)` and `(proxyAddresses=smtp:%s)` → `(proxyAddresses=smtp:*)`.
 */
export function listFilterFromTemplate(template: string): string {
  const out = expandDirectives(template, (d) => (d === 's' || d === 'u' || d === 'd' ? '*' : unknownDirective(template, d)));
  return out.replace(/\*{2,}/g, '*');
}

/** True when the template holds the directive `%x` (`%%x` is a literal, not a directive). */
export function templateUses(template: string, directive: 's' | 'u' | 'd'): boolean {
  let found = false;
  expandDirectives(template, (d) => {
    if (d === directive) found = true;
    return '';
  });
  return found;
}

/** Why a filter template cannot be used, or null when it is fine. For config checks. */
export function checkFilterTemplate(template: string): string | null {
  try {
    parseFilter(expandFilter(template, 'user@example.com'));
    parseFilter(listFilterFromTemplate(template));
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** Raw non-ASCII typed into a template: escape it so every byte ≥ 0x80 in a parsed value came from `\XX`. */
function escapeRawNonAscii(filter: string): string {
  return filter.replace(/[^\x00-\x7f]+/gu, (run) => escapeFilterValue(run));
}

/** ldapts decodes `\XX` one byte per char (Latin-1); turn such byte strings back into UTF-8 text. */
function fixValue(value: unknown): unknown {
  if (typeof value !== 'string' || !/[\x80-\xff]/.test(value)) return value;
  return Buffer.from(value, 'latin1').toString('utf8');
}

function fixTree(node: Filter): void {
  const n = node as unknown as Record<string, unknown>;
  if (Array.isArray(n.filters)) for (const child of n.filters as Filter[]) fixTree(child);
  if (n.filter && typeof n.filter === 'object') fixTree(n.filter as Filter);
  for (const key of ['value', 'initial', 'final']) if (key in n) n[key] = fixValue(n[key]);
  if (Array.isArray(n.any)) n.any = (n.any as unknown[]).map(fixValue);
}

/**
 * Parses an RFC 4515 filter string into the ldapts filter object sent on the wire, with
 * escaped non-ASCII values decoded as UTF-8 (ldapts alone would send them as Latin-1).
 * Throws on a malformed filter.
 */
export function parseFilter(filter: string): Filter {
  const parsed = FilterParser.parseString(escapeRawNonAscii(filter));
  fixTree(parsed);
  return parsed;
}

/** Placeholders no real address part can be confused with: substitution is one pass, never rescanned. */
const LOCAL_MARK = 'qz1rcptgatelocalqz1';
const DOMAIN_MARK = 'qz1rcptgatedomainqz1';
const ADDRESS_MARK = 'qz1rcptgateaddressqz1';
const MARKS = new RegExp(`${ADDRESS_MARK}|${LOCAL_MARK}|${DOMAIN_MARK}`, 'g');
/** The placeholders parseMarked() leaves where each address part goes. */
export const ADDRESS_MARKS = Object.freeze({ address: ADDRESS_MARK, local: LOCAL_MARK, domain: DOMAIN_MARK });

/** The template parsed with a placeholder (ADDRESS_MARKS) for each address part. */
export function parseMarked(template: string): Filter {
  return parseFilter(
    expandDirectives(template, (d) => (d === 's' ? ADDRESS_MARK : d === 'u' ? LOCAL_MARK : d === 'd' ? DOMAIN_MARK : unknownDirective(template, d))),
  );
}

function cloneWith(node: Filter, sub: (value: string) => string): Filter {
  const copy = Object.create(Object.getPrototypeOf(node) as object) as Record<string, unknown>;
  for (const [key, value] of Object.entries(node as unknown as Record<string, unknown>)) {
    if (key === 'filters' && Array.isArray(value)) copy[key] = (value as Filter[]).map((child) => cloneWith(child, sub));
    else if (key === 'filter' && value && typeof value === 'object') copy[key] = cloneWith(value as Filter, sub);
    else if ((key === 'value' || key === 'initial' || key === 'final') && typeof value === 'string') copy[key] = sub(value);
    else if (key === 'any' && Array.isArray(value)) copy[key] = value.map((v: unknown) => (typeof v === 'string' ? sub(v) : v));
    else copy[key] = value;
  }
  return copy as unknown as Filter;
}

/**
 * A template parsed once: each lookup clones the tree with the address parts put in as raw
 * values (the tree carries values unescaped; ldapts encodes them on the wire). Sends exactly the
 * bytes of `parseFilter(expandFilter(template, address))`, without escaping and re-parsing a
 * filter string per lookup.
 */
export function compileFilter(template: string): (address: string) => Filter {
  const parsed = parseMarked(template);
  return (address) => {
    const { local, domain } = splitAddress(address);
    const sub = (value: string): string =>
      value.includes('qz1rcptgate') ? value.replace(MARKS, (m) => (m === ADDRESS_MARK ? address : m === LOCAL_MARK ? local : domain)) : value;
    return cloneWith(parsed, sub);
  };
}
