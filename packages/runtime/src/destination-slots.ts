import type { Redis } from './redis.js';

/**
 * Connection slots per destination host:port, shared by every sender of every pool (issue 3: a
 * customer's server sees at most N connections from all of Moat together, not N per sender
 * process — a destination served by several senders would otherwise get N × senders).
 *
 * Keys (under the client's prefix, MOAT_REDIS_PREFIX):
 * - `dest:{<host:port>}:conns` — sorted set, one member per connection (`<senderId>#<n>`), scored
 *   with the Redis server time (ms) at which its lease expires. The holder renews the lease while
 *   the connection lives and removes the member when it closes. A member past its score belongs
 *   to a sender that stopped renewing (killed, partitioned): every claim removes those first, so
 *   a dead sender's slots come back within one lease time.
 * - `dest:{<host:port>}:wanting` — sorted set of senders that have transactions waiting for a
 *   connection to the destination, scored with the time their wish expires. Holders read its
 *   size to give back connections beyond their fair share, so one busy sender cannot keep every
 *   slot while another sender's prefetched requests wait.
 * Both keys expire by themselves when nobody renews them. The destination is their hash tag, so
 * the one script that uses both works on a Redis Cluster.
 *
 * Time is Redis's (TIME inside the script), never a sender's clock: senders on different hosts
 * with skewed clocks would otherwise expire each other's leases early or late.
 */
export type WantMode = 'want' | 'want-if-refused' | 'clear';

export interface ClaimResult {
  /** Per lease id asked for: held now (renewed, or newly taken within the limit). */
  granted: boolean[];
  /** Other senders that currently want connections to this destination. */
  othersWanting: number;
}

// KEYS[1] conns, KEYS[2] wanting. ARGV: leaseMs, limit, senderId, wantMode, wantMs, leaseId…
// A lease already held is renewed even when the set is at (or over) the limit; a new one is
// added only below it. Expired members go first, so their slots count as free.
const claimScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local leaseMs = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local granted = {}
local refused = false
for i = 6, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', KEYS[1], id) or redis.call('ZCARD', KEYS[1]) < limit then
    redis.call('ZADD', KEYS[1], now + leaseMs, id)
    granted[#granted + 1] = 1
  else
    granted[#granted + 1] = 0
    refused = true
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], leaseMs * 2) end
local mode = ARGV[4]
local wantMs = tonumber(ARGV[5])
if mode == 'want' or (mode == 'want-if-refused' and refused) then
  redis.call('ZADD', KEYS[2], now + wantMs, ARGV[3])
  redis.call('PEXPIRE', KEYS[2], wantMs * 2)
elseif mode == 'clear' then
  redis.call('ZREM', KEYS[2], ARGV[3])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local wanting = redis.call('ZCARD', KEYS[2])
if redis.call('ZSCORE', KEYS[2], ARGV[3]) then wanting = wanting - 1 end
return { granted, wanting }
`;

export class DestinationSlots {
  constructor(private readonly redis: Redis) {}

  /** The sorted set of connection leases of a destination (documented above). */
  static connsKey(destination: string): string {
    return `dest:{${destination}}:conns`;
  }

  static wantingKey(destination: string): string {
    return `dest:{${destination}}:wanting`;
  }

  /**
   * Takes or renews leases for `leaseIds` on `destination`, at most `limit` in all (every
   * sender's leases together), each valid for `leaseMs`. `want` records whether this sender has
   * transactions waiting for more connections ('want-if-refused': only when a lease was refused).
   */
  async claim(opts: { destination: string; leaseIds: readonly string[]; leaseMs: number; limit: number; senderId: string; want: WantMode; wantMs: number }): Promise<ClaimResult> {
    const answer = (await this.redis.eval(
      claimScript,
      2,
      DestinationSlots.connsKey(opts.destination),
      DestinationSlots.wantingKey(opts.destination),
      opts.leaseMs,
      opts.limit,
      opts.senderId,
      opts.want,
      opts.wantMs,
      ...opts.leaseIds,
    )) as [number[], number];
    return { granted: answer[0].map((g) => g === 1), othersWanting: Math.max(0, Number(answer[1])) };
  }

  /** Gives a slot back (its connection closed). */
  async release(destination: string, leaseId: string): Promise<void> {
    await this.redis.zrem(DestinationSlots.connsKey(destination), leaseId);
  }

  /** Live leases of a destination (for tests and operators). */
  async holders(destination: string): Promise<string[]> {
    const [sec, usec] = (await this.redis.time()) as [string | number, string | number];
    const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    return this.redis.zrangebyscore(DestinationSlots.connsKey(destination), now, '+inf');
  }
}
