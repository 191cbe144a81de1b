/**
 * Per-client-address accounting for one listener: how many connections an address holds and how
 * many of its requests wait for the engine. One peer can then neither take every connection
 * slot nor every directory slot (README "Limits per client address").
 */

export interface PeerLimits {
  /** Connections one address may hold at once. */
  maxConnections: number;
  /** Requests of one address waiting for the engine at once, over all its connections. */
  maxOutstanding: number;
}

/** One client address. Connections of the same address share it. */
export class Peer {
  connections = 0;
  outstanding = 0;
  /** Connections paused because this peer used up its share; all are woken at each release
   * and those that cannot start a request wait again (a woken one that cannot use the room
   * must not leave the others asleep). */
  private waiters: Array<() => void> = [];

  constructor(
    readonly address: string,
    private readonly limits: PeerLimits,
    /** Called when the peer holds neither connections nor requests any more. */
    private readonly onEmpty: (peer: Peer) => void,
  ) {}

  /** True when this peer may not start another engine request now. */
  get full(): boolean {
    return this.outstanding >= this.limits.maxOutstanding;
  }

  acquire(): void {
    this.outstanding++;
  }

  release(): void {
    this.outstanding--;
    // Lookups of closed connections still count until they finish, so closing and reopening
    // does not escape the share; the entry goes with the last of them.
    if (this.connections === 0 && this.outstanding === 0) this.onEmpty(this);
    if (this.waiters.length === 0) return;
    const woken = this.waiters;
    this.waiters = [];
    for (const wake of woken) wake();
  }

  /** Calls `wake` once, when a request of this peer finishes. */
  wait(wake: () => void): void {
    if (!this.waiters.includes(wake)) this.waiters.push(wake);
  }

  forget(wake: () => void): void {
    const i = this.waiters.indexOf(wake);
    if (i >= 0) this.waiters.splice(i, 1);
  }
}

export class PeerTable {
  private readonly peers = new Map<string, Peer>();
  private readonly drop = (peer: Peer): void => {
    if (this.peers.get(peer.address) === peer) this.peers.delete(peer.address);
  };

  constructor(readonly limits: PeerLimits) {}

  /** The peer for a new connection from `address`, or null when it holds its cap already. */
  admit(address: string): Peer | null {
    let peer = this.peers.get(address);
    if (peer === undefined) this.peers.set(address, (peer = new Peer(address, this.limits, this.drop)));
    if (peer.connections >= this.limits.maxConnections) return null;
    peer.connections++;
    return peer;
  }

  /** A connection of `peer` closed. The entry goes once nothing of it is left. */
  leave(peer: Peer): void {
    peer.connections--;
    if (peer.connections === 0 && peer.outstanding === 0) this.drop(peer);
  }

  get size(): number {
    return this.peers.size;
  }
}
