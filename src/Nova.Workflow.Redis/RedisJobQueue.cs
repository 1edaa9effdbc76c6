using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Options;
using Nova.Workflow.Storage;
using Nova.Workflow.Storage.InMemory;
using StackExchange.Redis;

namespace Nova.Workflow.Redis;

/// <summary>
/// The job queue on Redis. Per queue (one hash slot): a ready sorted set by (priority, sequence), whose
/// bands per priority also give the oldest job for the anti-starvation rule, a delayed set by not-before time, a leased set by lease expiry,
/// and one hash of job records (score, deliveries, lease token, payload: q_record.lua). Dequeue is one script that also promotes due
/// jobs and takes back lapsed leases. Idle workers wait on a pub/sub wake-up; polling is the safety net.
/// </summary>
internal sealed class RedisJobQueue : IJobQueue, IDisposable
{
    private readonly IConnectionMultiplexer _redis;
    private readonly RedisKeys _keys;
    private readonly int _database;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, QueueKeys> _queueKeys = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, WakeSignal> _wake = new(StringComparer.Ordinal);

    internal QueueKeys KeysOf(string queue) => Keys(queue);

    public RedisJobQueue(IConnectionMultiplexer redis, IOptions<RedisProviderOptions> options, TimeProvider time)
    {
        _redis = redis;
        _keys = new RedisKeys(options.Value.Prefix);
        _database = options.Value.Database;
        _time = time;
    }

    private IDatabase Db => _redis.GetDatabase(_database);

    public async ValueTask EnqueueAsync(IReadOnlyList<Job> jobs, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(jobs);
        if (jobs.Count == 0)
        {
            return;
        }

        var calls = new List<Task>();
        foreach (var group in jobs.GroupBy(j => j.Queue, StringComparer.Ordinal))
        {
            var q = Keys(group.Key);
            var args = new List<RedisValue> { _keys.Wake(group.Key).ToString() };
            foreach (var job in group)
            {
                args.Add(JobId(job));
                args.Add(JobCodec.Serialize(job));
                args.Add(job.Priority);
                args.Add(job.NotBefore is { } nb ? ScriptResults.Ms(nb) : "0");
            }

            calls.Add(RedisScripts.Enqueue.EvaluateAsync(Db, q.All, [.. args]));
        }

        await Task.WhenAll(calls).ConfigureAwait(false);
    }

    public async ValueTask<IReadOnlyList<LeasedJob>> DequeueAsync(IReadOnlyList<string> queues, int maxCount, TimeSpan lease, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queues);
        var result = new List<LeasedJob>();
        foreach (var queue in queues)
        {
            var want = maxCount - result.Count;
            if (want <= 0)
            {
                break;
            }

            var q = Keys(queue);
            var args = new RedisValue[3 + want];
            args[0] = want;
            args[1] = ScriptResults.Ms(lease);
            args[2] = InMemoryJobQueue.FairnessInterval;
            for (var k = 0; k < want; k++)
            {
                args[3 + k] = LeaseTokens.Next().ToString("N");
            }

            var raw = (RedisResult[])(await RedisScripts.Dequeue.EvaluateAsync(Db, q.All, args).ConfigureAwait(false))!;
            for (var k = 0; k < raw.Length; k += 5)
            {
                if (await ReadLeasedAsync(queue, raw, k).ConfigureAwait(false) is { } job)
                {
                    result.Add(job);
                }
            }
        }

        return result;
    }

    /// <summary>
    /// The job a dequeue returned at <paramref name="at"/> (payload, token, deliveries, lease expiry, id); null when nobody can
    /// read it: it then goes to the dead letters, and never reaches (or stalls) a worker.
    /// </summary>
    internal async ValueTask<LeasedJob?> ReadLeasedAsync(string queue, RedisResult[] raw, int at)
    {
        var payload = (string?)raw[at];
        var token = Guid.ParseExact((string)raw[at + 1]!, "N");
        var id = (string)raw[at + 4]!;
        var job = payload is ['~', ..] ? ParseShort(queue, id, payload) : JobCodec.TryParse(payload);
        if (job is null)
        {
            await DeadLetterRawAsync(queue, id, token, payload).ConfigureAwait(false);
            return null;
        }

        return new LeasedJob(job, token, (int)raw[at + 2], DateTimeOffset.FromUnixTimeMilliseconds((long)raw[at + 3]));
    }

    /// <summary>
    /// A job the scripts enqueued (fused.lua): its payload is "~priority|index|s|traceparent", and its id
    /// "execution:node:attempt" names the rest; null when either does not read.
    /// </summary>
    internal static Job? ParseShort(string queue, string id, string payload)
    {
        var rest = payload.AsSpan(1);
        var bar = rest.IndexOf('|');
        if (bar <= 0 || !int.TryParse(rest[..bar], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var priority))
        {
            return null;
        }

        // Past the priority: the index and s, which only the claim reads, then the traceparent.
        rest = rest[(bar + 1)..];
        for (var skip = 0; skip < 2; skip++)
        {
            bar = rest.IndexOf('|');
            if (bar < 0)
            {
                return null;
            }

            rest = rest[(bar + 1)..];
        }

        var lastColon = id.LastIndexOf(':');
        if (id.Length < 35 || id[32] != ':' || lastColon <= 33
            || !Guid.TryParseExact(id.AsSpan(0, 32), "N", out var execution)
            || !int.TryParse(id.AsSpan(lastColon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var attempt))
        {
            return null;
        }

        return new Job(execution, id[33..lastColon], attempt, queue, priority, null, rest.IsEmpty ? null : rest.ToString());
    }

    public async ValueTask WaitAsync(IReadOnlyList<string> queues, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        // Take the signals before looking, so a wake-up between the look and the wait is not missed.
        var wakeSignals = queues.Select(Signal).ToList();
        foreach (var wake in wakeSignals)
        {
            await wake.Subscribed.ConfigureAwait(false);
        }

        var signals = wakeSignals.Select(s => s.Current).ToList();
        var deadline = timeout;

        // One look per queue, which also marks an empty queue idle so the next enqueue publishes a wake-up (q_idle.lua).
        var looks = await Task.WhenAll(queues.Select(queue =>
        {
            var q = Keys(queue);
            return RedisScripts.Idle.EvaluateAsync(Db, [q.Ready, q.Delayed, q.Leased, q.Meta], []);
        })).ConfigureAwait(false);
        foreach (var look in looks)
        {
            // { ready count, first delayed due or nil, first lease to lapse or nil, now }: see q_idle.lua.
            var reply = (RedisResult[])look!;
            if ((long)reply[0] > 0)
            {
                return;
            }

            var now = (long)reply[3];
            foreach (var due in (RedisResult[])[reply[1], reply[2]])
            {
                if (!due.IsNull)
                {
                    var wait = TimeSpan.FromMilliseconds(Math.Max(0, double.Parse((string)due!, CultureInfo.InvariantCulture) - now));
                    if (wait < deadline)
                    {
                        deadline = wait;
                    }
                }
            }
        }

        await WakeWait.WaitAsync(signals, deadline, _time, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<IReadOnlyList<bool>> ExtendLeasesAsync(IReadOnlyList<LeasedJob> jobs, TimeSpan lease, CancellationToken cancellationToken = default)
    {
        var held = new bool[jobs.Count];
        var calls = Enumerable.Range(0, jobs.Count).GroupBy(i => jobs[i].Job.Queue, StringComparer.Ordinal).Select(async group =>
        {
            var indices = group.ToArray();
            var q = Keys(group.Key);
            var args = new RedisValue[1 + indices.Length * 2];
            args[0] = ScriptResults.Ms(lease);
            for (var k = 0; k < indices.Length; k++)
            {
                args[1 + k * 2] = JobId(jobs[indices[k]].Job);
                args[2 + k * 2] = jobs[indices[k]].LeaseToken.ToString("N");
            }

            var result = (RedisResult[])(await RedisScripts.Extend.EvaluateAsync(Db, q.All, args).ConfigureAwait(false))!;
            for (var k = 0; k < indices.Length; k++)
            {
                held[indices[k]] = (int)result[k] == 1;
            }
        });
        await Task.WhenAll(calls).ConfigureAwait(false);
        return held;
    }

    public async ValueTask<bool> AckAsync(LeasedJob job, CancellationToken cancellationToken = default) =>
        await AckAsync(job.Job.Queue, JobId(job.Job), job.LeaseToken).ConfigureAwait(false);

    public async ValueTask<bool> ReleaseAsync(LeasedJob job, TimeSpan delay, CancellationToken cancellationToken = default)
    {
        var q = Keys(job.Job.Queue);
        return (int)await RedisScripts.ReleaseJob.EvaluateAsync(
            Db,
            q.All,
            [_keys.Wake(job.Job.Queue).ToString(), JobId(job.Job), job.LeaseToken.ToString("N"), ScriptResults.Ms(delay)]).ConfigureAwait(false) == 1;
    }

    public async ValueTask DeadLetterAsync(DeadLetter entry, LeasedJob? job, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(entry);
        await RedisScripts.DeadLetters.EvaluateAsync(Db, _keys.DeadLetters, ["add", entry.Id.ToString("N"), JobCodec.Serialize(entry)]).ConfigureAwait(false);
        if (job is not null)
        {
            await AckAsync(job, cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask<IReadOnlyList<DeadLetter>> ListDeadLettersAsync(int max, CancellationToken cancellationToken = default)
    {
        var keys = _keys.DeadLetters;
        var ids = await Db.SortedSetRangeByRankAsync(keys[0], 0, max - 1, Order.Descending).ConfigureAwait(false);
        if (ids.Length == 0)
        {
            return [];
        }

        var entries = await Db.HashGetAsync(keys[1], ids).ConfigureAwait(false);
        return [.. entries.Where(e => !e.IsNullOrEmpty).Select(e => JobCodec.ParseDeadLetter((string)e!)!)];
    }

    public async ValueTask<DeadLetter?> TakeDeadLetterAsync(Guid id, CancellationToken cancellationToken = default)
    {
        var entry = await RedisScripts.DeadLetters.EvaluateAsync(Db, _keys.DeadLetters, ["take", id.ToString("N")]).ConfigureAwait(false);
        return entry.IsNull ? null : JobCodec.ParseDeadLetter((string)entry!);
    }

    public async ValueTask<long> GetDepthAsync(string queue, CancellationToken cancellationToken = default)
    {
        var q = Keys(queue);
        var batch = Db.CreateBatch();
        var ready = batch.SortedSetLengthAsync(q.Ready);
        var delayed = batch.SortedSetLengthAsync(q.Delayed);
        batch.Execute();
        return await ready.ConfigureAwait(false) + await delayed.ConfigureAwait(false);
    }

    /// <summary>
    /// Test and operations seam: makes a ready job as a corrupted store would hold it: a record whose payload nobody can parse,
    /// a record that does not parse at all, or an id in the ready set with no record.
    /// </summary>
    internal async Task InjectRawAsync(string queue, string id, string payload, RawJobDamage damage = RawJobDamage.Payload)
    {
        var q = Keys(queue);
        var score = (9 * 10_000_000_000_000L + 1).ToString(CultureInfo.InvariantCulture);
        var batch = Db.CreateBatch();
        var tasks = new List<Task>
        {
            batch.SortedSetAddAsync(q.Ready, id, double.Parse(score, CultureInfo.InvariantCulture)),
        };
        if (damage != RawJobDamage.NoRecord)
        {
            tasks.Add(batch.HashSetAsync(q.Jobs, id, damage == RawJobDamage.Payload ? score + "|0||" + payload : payload));
        }

        batch.Execute();
        await Task.WhenAll(tasks).ConfigureAwait(false);
    }

    public void Dispose()
    {
        foreach (var signal in _wake.Values)
        {
            signal.Dispose();
        }
    }

    private async Task<bool> AckAsync(string queue, string id, Guid token)
    {
        var q = Keys(queue);
        return (int)await RedisScripts.Ack.EvaluateAsync(Db, q.All, [id, token.ToString("N")]).ConfigureAwait(false) == 1;
    }

    private async Task DeadLetterRawAsync(string queue, string id, Guid token, string? payload)
    {
        var entry = JobCodec.Unreadable(queue, payload, _time.GetUtcNow());
        await RedisScripts.DeadLetters.EvaluateAsync(Db, _keys.DeadLetters, ["add", entry.Id.ToString("N"), JobCodec.Serialize(entry)]).ConfigureAwait(false);
        await AckAsync(queue, id, token).ConfigureAwait(false);
    }

    internal static string JobId(Job job) => JobCodec.Id(job);

    private QueueKeys Keys(string queue) => _queueKeys.GetOrAdd(queue, _keys.Queue);

    private WakeSignal Signal(string queue) => _wake.GetOrAdd(queue, q => new WakeSignal(_redis.GetSubscriber(), _keys.Wake(q)));

    /// <summary>A pub/sub subscription that completes the current task on every wake-up message.</summary>
    private sealed class WakeSignal : IDisposable
    {
        private readonly ISubscriber _subscriber;
        private readonly RedisChannel _channel;
        private TaskCompletionSource _current = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public WakeSignal(ISubscriber subscriber, RedisChannel channel)
        {
            _subscriber = subscriber;
            _channel = channel;
            Subscribed = _subscriber.SubscribeAsync(channel, (_, _) => Interlocked.Exchange(ref _current, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult());
        }

        public Task Subscribed { get; }

        public Task Current => Volatile.Read(ref _current).Task;

        // Fire-and-forget: disposal must not block on (or fail with) a connection the app may already have closed.
        public void Dispose()
        {
            try
            {
                _subscriber.Unsubscribe(_channel, flags: CommandFlags.FireAndForget);
            }
            catch (Exception ex) when (ex is RedisException or ObjectDisposedException)
            {
                // The connection is gone, and the subscription with it.
            }
        }
    }
}

/// <summary>How <see cref="RedisJobQueue.InjectRawAsync"/> damages the job it makes.</summary>
internal enum RawJobDamage
{
    /// <summary>A well-formed record whose payload nobody can parse.</summary>
    Payload,

    /// <summary>A record that does not parse.</summary>
    Record,

    /// <summary>No record at all.</summary>
    NoRecord,
}
