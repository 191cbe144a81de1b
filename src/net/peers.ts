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
  /**
   * Connections paused because this peer used up its share, in the order they began to wait.
   * Each freed request wakes the next in turn; one that still has requests after starting one
   * waits again at the back. So a client's connections share its room round-robin, and a
   * release costs one wake-up, not one per waiting connection (with 200 waiting connections,
   * waking them all at every release took most of the process's CPU).
   */
  private readonly waiters = new Set<() => void>();

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
    // A woken connection either starts a request (and waits again at the back if it has more)
    // or cannot use the room (its own pipeline or write buffer is full; its own progress calls
    // it back): then the next one is woken, so room never goes unused while someone waits.
    for (const wake of this.waiters) {
      if (this.full) return;
      this.waiters.delete(wake);
      wake();
    }
  }

  /** Calls `wake` once, in turn with the other waiting connections, when room frees up. */
  wait(wake: () => void): void {
    this.waiters.add(wake);
  }

  forget(wake: () => void): void {
    this.waiters.delete(wake);
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
