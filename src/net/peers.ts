/**
 * Per-client-address accounting for one listener: how many connections an address holds and how
 * many of its requests wait for the engine. One peer can then neither take every connection
 * slot nor the directory's time (README "Limits per client address").
 *
 * Engine work is shared in turns. A listener has `maxOutstanding` requests waiting for the engine
 * at once over all clients, one client at most `maxOutstandingPerClient` of them. When the
 * listener's room is used up, each freed place goes to the client that has waited longest, and a
 * client with more to do queues again at the back. So a client alone may use the whole room, and
 * its share shrinks as others ask. A client with nothing in progress may always start one: one
 * that asks one recipient at a time never waits behind the backlog of another that floods from
 * 200 connections. Inside a client, its waiting connections take turns the same way.
 */

export interface PeerLimits {
  /** Connections one address may hold at once. */
  maxConnections: number;
  /** Requests of one address waiting for the engine at once, over all its connections. */
  maxOutstanding: number;
  /** Requests of all addresses waiting for the engine at once; beyond it, clients take turns. */
  maxTotalOutstanding: number;
}

/** Places one connection may take in a row while others of its client wait (a batch's worth). */
const TURN = 16;

/** One client address. Connections of the same address share it. */
export class Peer {
  connections = 0;
  outstanding = 0;
  /**
   * Connections paused for room, in the order they began to wait. Each freed place wakes one in
   * turn (waking them all at every release took most of the CPU under a 200-connection flood).
   */
  private readonly waiters = new Set<() => void>();
  /** The connection whose turn it is, and how many places it has had in a row. */
  private current: (() => void) | null = null;
  private streak = 0;

  constructor(
    readonly address: string,
    private readonly table: PeerTable,
  ) {}

  /**
   * True when this peer may not start another engine request now. A client with none in progress
   * may always start one: one that asks one thing at a time never waits for a turn (this exceeds
   * the listener's room by at most one request per client, bounded by the connection limits).
   */
  get full(): boolean {
    return this.atOwnLimit || (this.outstanding > 0 && this.table.full);
  }

  get atOwnLimit(): boolean {
    return this.outstanding >= this.table.limits.maxOutstanding;
  }

  /** A connection of this peer is paused for room. */
  get waiting(): boolean {
    return this.waiters.size > 0;
  }

  acquire(): void {
    this.outstanding++;
    this.table.outstanding++;
  }

  release(): void {
    this.outstanding--;
    this.table.outstanding--;
    // Lookups of closed connections still count until they finish, so closing and reopening
    // does not escape the share; the entry goes with the last of them.
    if (this.connections === 0 && this.outstanding === 0) this.table.drop(this);
    // With nothing left in progress it may start one at once (see `full`); else it takes turns.
    if (this.outstanding === 0) this.wakeOne();
    if (this.waiting && !this.atOwnLimit) this.table.enqueue(this);
    this.table.wake();
  }

  /** Calls `wake` once, in turn with the other waiting connections and clients, when room frees up. */
  wait(wake: () => void): void {
    this.waiters.add(wake);
    // A peer at its own limit queues again at its own release.
    if (!this.atOwnLimit) this.table.enqueue(this);
  }

  forget(wake: () => void): void {
    this.waiters.delete(wake);
    if (this.current === wake) this.current = null;
  }

  /**
   * Wakes waiting connections in turn until one starts a request (true). One that cannot use the
   * room (its own pipeline or write buffer is full) passes it on; its own progress calls it back.
   */
  wakeOne(): boolean {
    // A connection keeps its turn for up to TURN places in a row: its requests then share a
    // batched search and their replies one write, instead of one write per reply.
    const current = this.current;
    if (current !== null && this.streak < TURN && this.waiters.has(current) && this.tryWake(current)) {
      this.streak++;
      return true;
    }
    for (const wake of this.waiters) {
      if (this.tryWake(wake)) {
        this.current = wake;
        this.streak = 1;
        return true;
      }
    }
    this.current = null;
    return false;
  }

  private tryWake(wake: () => void): boolean {
    this.waiters.delete(wake);
    const before = this.outstanding;
    wake();
    return this.outstanding > before;
  }
}

export class PeerTable {
  /** Requests of all peers waiting for the engine. */
  outstanding = 0;
  private readonly peers = new Map<string, Peer>();
  /** Peers with a connection paused for room, in turn order. */
  private readonly turns = new Set<Peer>();
  private waking = false;

  constructor(readonly limits: PeerLimits) {}

  get full(): boolean {
    return this.outstanding >= this.limits.maxTotalOutstanding;
  }

  /** The peer for a new connection from `address`, or null when it holds its cap already. */
  admit(address: string): Peer | null {
    let peer = this.peers.get(address);
    if (peer === undefined) this.peers.set(address, (peer = new Peer(address, this)));
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

  drop(peer: Peer): void {
    if (this.peers.get(peer.address) === peer) this.peers.delete(peer.address);
    this.turns.delete(peer);
  }

  /** `peer` waits for a turn (no-op if it already does: it keeps its place). */
  enqueue(peer: Peer): void {
    this.turns.add(peer);
  }

  /** Hands free room to waiting peers, longest-waiting first, one request per turn. */
  wake(): void {
    if (this.waking) return; // the loop below is running and sees the room too
    this.waking = true;
    try {
      for (const peer of this.turns) {
        if (this.full) return;
        this.turns.delete(peer);
        if (peer.atOwnLimit) continue; // back in line at its own release
        peer.wakeOne();
        // Its turn is used: to the back of the line while it has connections waiting.
        if (peer.waiting && !peer.atOwnLimit) this.turns.add(peer);
      }
    } finally {
      this.waking = false;
    }
  }
}
