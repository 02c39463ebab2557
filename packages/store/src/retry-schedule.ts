import type { Redis } from '@moat/runtime';

/**
 * The retry schedule and destination health in Redis (DESIGN.md: "Redis: retry state and
 * schedule, destination health"). Postgres' deliveries table stays the durable truth: a row is
 * 'deferred' with its next_attempt_at there before (or while) it is scheduled here, so losing
 * Redis loses no mail — the router rebuilds this schedule from Postgres (see `ready`).
 *
 * Keys, all under the client's prefix (MOAT_REDIS_PREFIX) and the hash tag `{retry}` so that one
 * Lua script may touch them together on a Redis Cluster too:
 *   {retry}:q:<destination>  sorted set: deferred delivery id → when it is due (ms). A claimed
 *                            entry stays, re-scored to now + lease, until its publish is
 *                            confirmed: a router that dies between claim and publish loses nothing.
 *   {retry}:dests            sorted set: destination → when it next needs attention (its earliest
 *                            due entry, or later while the destination is backed off or paced).
 *   {retry}:state            hash: delivery id → JSON retry state (attempts, first and next
 *                            attempt, destination, last reply per recipient).
 *   {retry}:h:<destination>  hash: destination health — failures (consecutive attempts that found
 *                            it down), until (back-off end, ms), probe (a probe attempt's lease end),
 *                            probeId, error; and the pacing bucket (tokens, refill).
 *   {retry}:ready            set once the schedule holds every deferred delivery (after a rebuild).
 *                            Missing (Redis flushed or replaced) → the router rebuilds.
 */
export interface RetryEntry {
  id: string;
  destination: string;
  /** When the attempt is due (ms since the epoch). */
  dueAt: number;
  /** The retry state kept with it (shown by queue control, read by operators). */
  state?: RetryState;
}

export interface RetryState {
  /** Attempts made so far. */
  attempts: number;
  /** First attempt (ISO). */
  firstAttemptAt: string | null;
  /** Next attempt as scheduled from the delivery's own back-off (ISO). */
  nextAttemptAt: string | null;
  /** Last reply per recipient still queued. */
  lastReplies: Record<string, string>;
}

export interface DestinationHealth {
  destination: string;
  /** Consecutive attempts that found the destination down (0: up). */
  failures: number;
  /** While in the future: no attempt to this destination before then (ms). */
  backoffUntil: number;
  lastError: string | null;
}

export interface ClaimOptions {
  now: number;
  /** Most deliveries claimed per call. */
  batch: number;
  /** A claimed entry comes back this long after the claim unless released. */
  leaseMs: number;
  /** A destination's backlog is released at most this many deliveries per second (token bucket). */
  drainPerSecond: number;
  /** How long a probe of a down destination may take before another probe is allowed. */
  probeLeaseMs: number;
}

export interface Claim {
  /** False: the schedule is not known to be complete (Redis was flushed); rebuild first. */
  ready: boolean;
  /** Claimed entries (publish each, then `release`). */
  entries: { id: string; destination: string }[];
  /** True when more may be due right now (the call stopped at its bounds). */
  more: boolean;
}

const tag = '{retry}';

/**
 * KEYS: none (they derive from the prefix, all in the `{retry}` slot). ARGV: prefix, now, batch,
 * lease, rate (per second), burst, probe lease. Walks the destinations due now (at most `batch` of them) and,
 * for each one, claims what its state allows:
 * - backed off (until > now): nothing; the destination comes back at `until`;
 * - down, back-off over: ONE probe attempt at a time (its lease in `probe`) — the rest wait for
 *   the probe's verdict (destinationUp wakes them; destinationDown backs off again);
 * - up: as many due entries as its pacing bucket has tokens (a recovered destination's backlog
 *   drains at the paced rate instead of all at once).
 * Returns { ready, more, id1, dest1, id2, dest2, … }.
 */
const claimScript = `
local p, now, batch, lease, rate, burst, probeLease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local dk = p .. '${tag}:dests'
local ready = redis.call('EXISTS', p .. '${tag}:ready')
local out = {}
local claimed = 0
local dests = redis.call('ZRANGEBYSCORE', dk, '-inf', now, 'LIMIT', 0, batch)
for _, dest in ipairs(dests) do
  if claimed >= batch then break end
  local qk = p .. '${tag}:q:' .. dest
  local hk = p .. '${tag}:h:' .. dest
  local h = redis.call('HMGET', hk, 'until', 'probe', 'tokens', 'refill')
  local untilT = tonumber(h[1]) or 0
  local probe = tonumber(h[2]) or 0
  local tokens = tonumber(h[3])
  local refill = tonumber(h[4]) or now
  if tokens == nil then tokens = burst end
  tokens = math.min(burst, tokens + (now - refill) * rate / 1000)
  local allowed = 0
  local gate = 0
  if untilT > now then
    gate = untilT
  elseif untilT > 0 then
    if probe > now then gate = probe else allowed = 1 end
  else
    allowed = math.min(batch - claimed, math.floor(tokens))
  end
  if allowed > 0 then
    local ids = redis.call('ZRANGEBYSCORE', qk, '-inf', now, 'LIMIT', 0, allowed)
    for _, id in ipairs(ids) do
      redis.call('ZADD', qk, now + lease, id)
      out[#out + 1] = id
      out[#out + 1] = dest
    end
    claimed = claimed + #ids
    if untilT > 0 then
      if #ids > 0 then redis.call('HSET', hk, 'probe', now + probeLease, 'probeId', ids[1]) end
    else
      tokens = tokens - #ids
    end
  end
  if untilT == 0 then
    redis.call('HSET', hk, 'tokens', tostring(tokens), 'refill', now)
    redis.call('PEXPIRE', hk, 86400000)
    if tokens < 1 then gate = now + math.ceil((1 - tokens) * 1000 / rate) end
  end
  local first = redis.call('ZRANGE', qk, 0, 0, 'WITHSCORES')
  if #first == 0 then
    redis.call('ZREM', dk, dest)
  else
    redis.call('ZADD', dk, math.max(tonumber(first[2]), gate), dest)
  end
end
local more = 0
if claimed >= batch or #dests >= batch then more = 1 end
table.insert(out, 1, more)
table.insert(out, 1, ready)
return out
`;

/**
 * ARGV: prefix, destination, id, dueAt. Schedules one entry: the destination's queue, and the
 * destination's attention time lowered to the entry's (never raised: it may be gated later).
 */
const addScript = `
local p, dest, id, due = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
redis.call('ZADD', p .. '${tag}:q:' .. dest, due, id)
local dk = p .. '${tag}:dests'
local cur = redis.call('ZSCORE', dk, dest)
if not cur or tonumber(cur) > due then redis.call('ZADD', dk, due, dest) end
return 1
`;

/** ARGV: prefix, destination, now. Every entry of the destination's queue due later becomes due now. */
const wakeScript = `
local qk = ARGV[1] .. '${tag}:q:' .. ARGV[2]
local now = tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', qk, '(' .. now, '+inf')
for _, id in ipairs(ids) do redis.call('ZADD', qk, now, id) end
return #ids
`;

export class RetrySchedule {
  private readonly prefix: string;

  constructor(private readonly redis: Redis) {
    this.prefix = redis.options.keyPrefix ?? '';
  }

  // Keys as passed to ioredis commands (which add the prefix themselves).
  private queueKey(destination: string): string {
    return `${tag}:q:${destination}`;
  }
  private healthKey(destination: string): string {
    return `${tag}:h:${destination}`;
  }
  private readonly stateKey = `${tag}:state`;
  private readonly destsKey = `${tag}:dests`;
  private readonly readyKey = `${tag}:ready`;

  /** Schedules (or reschedules) entries; their retry state is stored with them when given. */
  async add(entries: readonly RetryEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const pipeline = this.redis.pipeline();
    for (const e of entries) {
      // eval's ARGV are not prefixed by ioredis; the script builds the full key names itself.
      pipeline.eval(addScript, 0, this.prefix, e.destination, e.id, String(Math.round(e.dueAt)));
      if (e.state) pipeline.hset(this.stateKey, e.id, JSON.stringify({ destination: e.destination, ...e.state }));
    }
    await execOrThrow(pipeline);
  }

  /** Takes entries off the schedule and drops their state (delivered, expired, held, purged). */
  async remove(entries: readonly { id: string; destination: string }[]): Promise<void> {
    if (entries.length === 0) return;
    const pipeline = this.redis.pipeline();
    for (const e of entries) pipeline.zrem(this.queueKey(e.destination), e.id);
    pipeline.hdel(this.stateKey, ...entries.map((e) => e.id));
    await execOrThrow(pipeline);
  }

  /** A claimed entry's attempt was published: it leaves the schedule (its state stays until done). */
  async release(entries: readonly { id: string; destination: string }[]): Promise<void> {
    if (entries.length === 0) return;
    const pipeline = this.redis.pipeline();
    for (const e of entries) pipeline.zrem(this.queueKey(e.destination), e.id);
    await execOrThrow(pipeline);
  }

  async claim(opts: ClaimOptions): Promise<Claim> {
    const rate = Math.max(0.001, opts.drainPerSecond);
    // The bucket holds a second's worth: a recovered destination gets a burst of one second of
    // its rate, then the steady rate.
    const burst = Math.max(1, Math.ceil(rate));
    const raw = (await this.redis.eval(claimScript, 0, this.prefix, String(opts.now), String(opts.batch), String(opts.leaseMs), String(rate), String(burst), String(opts.probeLeaseMs))) as (string | number)[];
    const entries: { id: string; destination: string }[] = [];
    for (let i = 2; i + 1 < raw.length; i += 2) entries.push({ id: String(raw[i]), destination: String(raw[i + 1]) });
    return { ready: Number(raw[0]) === 1, more: Number(raw[1]) === 1, entries };
  }

  /** Which of the entries are on the schedule (claimed or waiting). */
  async scheduled(entries: readonly { id: string; destination: string }[]): Promise<boolean[]> {
    if (entries.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const e of entries) pipeline.zscore(this.queueKey(e.destination), e.id);
    const answers = await execOrThrow(pipeline);
    return answers.map((a) => a !== null);
  }

  async isReady(): Promise<boolean> {
    return (await this.redis.exists(this.readyKey)) === 1;
  }

  /** The schedule now holds every deferred delivery (called after a rebuild from Postgres). */
  async markReady(): Promise<void> {
    await this.redis.set(this.readyKey, new Date().toISOString());
  }

  /**
   * Takes the rebuild lock for `ttlMs` (one router rebuilds; the others keep claiming what is
   * there). True when this caller holds it.
   */
  async lockRebuild(owner: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(`${tag}:rebuild-lock`, owner, 'PX', ttlMs, 'NX')) === 'OK';
  }

  async unlockRebuild(owner: string): Promise<void> {
    if ((await this.redis.get(`${tag}:rebuild-lock`)) === owner) await this.redis.del(`${tag}:rebuild-lock`);
  }

  async state(id: string): Promise<(RetryState & { destination: string }) | null> {
    const raw = await this.redis.hget(this.stateKey, id);
    return raw === null ? null : (JSON.parse(raw) as RetryState & { destination: string });
  }

  async states(ids: readonly string[]): Promise<((RetryState & { destination: string }) | null)[]> {
    if (ids.length === 0) return [];
    const raw = await this.redis.hmget(this.stateKey, ...ids);
    return raw.map((r) => (r === null ? null : (JSON.parse(r) as RetryState & { destination: string })));
  }

  /**
   * An attempt found the destination down. The first failure (or a failed probe) starts or
   * lengthens the back-off; results of other attempts that were under way when it went down do
   * not lengthen it again. `backoffMs(failures)` gives the back-off after that many failures.
   */
  async destinationDown(destination: string, deliveryId: string, error: string | null, now: number, backoffMs: (failures: number) => number): Promise<DestinationHealth> {
    const key = this.healthKey(destination);
    const [untilRaw, probeId, failuresRaw] = await this.redis.hmget(key, 'until', 'probeId', 'failures');
    const failures = Number(failuresRaw ?? 0);
    const until = Number(untilRaw ?? 0);
    const alreadyDown = until > 0 && probeId !== deliveryId;
    if (alreadyDown) return { destination, failures, backoffUntil: until, lastError: error };
    const next = failures + 1;
    const backoffUntil = now + backoffMs(next);
    await this.redis
      .multi()
      .hset(key, 'failures', next, 'until', backoffUntil, 'probe', 0, 'probeId', '', 'error', error ?? '')
      .hdel(key, 'tokens', 'refill')
      .pexpire(key, 7 * 86_400_000)
      .exec();
    return { destination, failures: next, backoffUntil, lastError: error };
  }

  /**
   * An attempt reached the destination: it is up. Its waiting entries are woken now, and drain
   * at the paced rate from an empty bucket (a server that just came back gets a ramp, not the
   * whole backlog in its first second).
   */
  async destinationUp(destination: string, now: number): Promise<boolean> {
    const key = this.healthKey(destination);
    const until = await this.redis.hget(key, 'until');
    if (until === null || Number(until) === 0) return false;
    await this.redis.multi().hset(key, 'failures', 0, 'until', 0, 'probe', 0, 'probeId', '', 'tokens', 0, 'refill', now).hdel(key, 'error').pexpire(key, 86_400_000).zadd(this.destsKey, now, destination).exec();
    // Deliveries whose own retry time is still ahead (they were tried before the destination was
    // known down) join the drain now instead of waiting out their back-off: the server is back.
    await this.redis.eval(wakeScript, 0, this.prefix, destination, String(now));
    return true;
  }

  /** Health of destinations (failures 0 and no back-off for those never seen down). */
  async health(destinations: readonly string[]): Promise<DestinationHealth[]> {
    if (destinations.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const d of destinations) pipeline.hmget(this.healthKey(d), 'failures', 'until', 'error');
    const answers = await execOrThrow(pipeline);
    return destinations.map((destination, i) => {
      const [failures, until, error] = (answers[i] as (string | null)[] | null) ?? [];
      return { destination, failures: Number(failures ?? 0), backoffUntil: Number(until ?? 0), lastError: error || null };
    });
  }

  /** Counts for operators and the benchmark: destinations with a backlog, entries in all. */
  async size(): Promise<{ destinations: number; entries: number }> {
    const destinations = await this.redis.zrange(this.destsKey, '0', '-1');
    const pipeline = this.redis.pipeline();
    for (const d of destinations) pipeline.zcard(this.queueKey(d));
    const counts = await execOrThrow(pipeline);
    return { destinations: destinations.length, entries: counts.reduce<number>((n, c) => n + Number(c ?? 0), 0) };
  }
}

/** Runs a pipeline; throws the first command error (ioredis reports them per command). */
async function execOrThrow(pipeline: ReturnType<Redis['pipeline']>): Promise<unknown[]> {
  const answers = (await pipeline.exec()) ?? [];
  const failed = answers.find(([err]) => err !== null);
  if (failed) throw failed[0];
  return answers.map(([, value]) => value);
}
