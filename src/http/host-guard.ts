import { isIP } from 'node:net';
import os from 'node:os';
import { isLoopbackAddress } from '../config/cidr.js';

/**
 * DNS rebinding guard for the lookup API's token-free access (README "HTTP API").
 *
 * A browser on the MX host that opens a hostile page can be made to send requests to
 * 127.0.0.1:8080 under the attacker's own host name (its DNS answer switched to 127.0.0.1), and
 * the page may read the answers as same-origin: every verdict, a harvest oracle. Such a request
 * comes from loopback and carries the attacker's name in Host. So a loopback peer admitted
 * without a token must name the server by something whose resolution no web page controls: an
 * IP literal; `localhost` and `*.localhost` (RFC 6761); this host's own name (Debian maps it to
 * 127.0.1.1); a name without a dot (a compose service, an /etc/hosts alias: public DNS has no
 * dotless names); a Kubernetes Service name, `*.svc` or `*.svc.cluster.local` (a service mesh's
 * sidecar connects from loopback). Peers that are not loopback are not checked: a browser cannot
 * be made to come from a pod's or an MX host's address. A request with a valid token is not a
 * browser's ambient authority and is never checked.
 */


/** This host's name and its first label, lower-case: names only the host's own resolver maps. */
function ownNames(): Set<string> {
  const name = os.hostname().toLowerCase().replace(/\.$/, '');
  return new Set(name ? [name, name.split('.')[0]!] : []);
}

/** The host part of a Host header, lower-case, without port or trailing dot; null when malformed. */
function hostName(header: string): string | null {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    if (end < 0 || !/^(:\d*)?$/.test(h.slice(end + 1))) return null;
    return h.slice(1, end);
  }
  const m = /^([^:]*)(:\d*)?$/.exec(h);
  return m ? m[1]!.replace(/\.$/, '') : null;
}

/** Names only this host or its cluster resolves (see above). */
function localName(name: string): boolean {
  return !name.includes('.') || name.endsWith('.localhost') || name.endsWith('.svc') || name.endsWith('.svc.cluster.local');
}

/**
 * Null when a token-free request from `peer` with this Host may be answered; otherwise the
 * reason it is refused. A request without Host (HTTP/1.0 only; browsers always send it) passes.
 */
export function rebindingRefusal(peer: string | undefined, host: string | undefined, names = ownNames()): string | null {
  if (host === undefined || !isLoopbackAddress(peer)) return null;
  const name = hostName(host);
  if (name !== null && name !== '' && (isIP(name) !== 0 || localName(name) || names.has(name))) return null;
  const shown = JSON.stringify(host.slice(0, 100));
  return `A request from loopback without a token must name this server by an IP address or localhost in Host, not ${shown}: a web page can point its own name at 127.0.0.1 (DNS rebinding) and read the answers. Use http://127.0.0.1:<port>/ or http://localhost:<port>/, or send the lookup token.`;
}

/** The guard with this host's names read once (they do not change while serving). */
export function hostGuard(): (peer: string | undefined, host: string | undefined) => string | null {
  const names = ownNames();
  return (peer, host) => rebindingRefusal(peer, host, names);
}
