using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Nova.Workflow.Diagnostics;
using Nova.Workflow.Storage;
using Nova.Workflow.Storage.InMemory;
using Npgsql;
using NpgsqlTypes;

namespace Nova.Workflow.Postgres;

/// <summary>
/// The job queue on PostgreSQL. A claim is one statement: lapsed leases are taken back, then
/// <c>UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED LIMIT n) … RETURNING</c> leases a batch in priority
/// order, with every 10th take (a shared sequence) going to the oldest ready job. Inserts notify
/// idle workers through LISTEN/NOTIFY; polling is the safety net.
/// </summary>
internal sealed class PostgresJobQueue : IJobQueue, IAsyncDisposable
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly bool _multiplexing;
    private readonly TimeProvider _time;
    private readonly string _s;
    private readonly Statements _sql;
    private readonly string _channel;
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _signals = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> _wakeState = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _listenLock = new();
    private readonly ILogger _logger;
    private readonly int _vacuumAfter;
    private Task? _listener;
    private int _disposed;
    private int _finishedSinceVacuum;
    private int _vacuuming;
    private Task _vacuum = Task.CompletedTask;

    public PostgresJobQueue(NpgsqlDataSource dataSource, IOptions<PostgresProviderOptions> options, TimeProvider time, ILoggerFactory loggers)
    {
        _dataSource = dataSource;
        _multiplexing = KeptConnections.Multiplexes(dataSource);
        _time = time;
        _s = options.Value.Schema;
        _sql = new Statements(_s);
        _channel = $"nova_{_s}_wake";
        _vacuumAfter = options.Value.VacuumJobsAfter;
        _logger = loggers.CreateLogger("Nova.Workflow.Postgres");
    }

    /// <summary>How many vacuums of the jobs table this process has run (for tests).</summary>
    internal int Vacuums { get; private set; }

    /// <summary>
    /// Counts jobs that left the table. Each leaves dead row versions behind, and their entries stay at the front of the
    /// ready index until a vacuum removes them: every claim walks over them first, so claims slowed eightfold over four
    /// 10,000-job bursts before autovacuum (at most once a minute) came round. After <see cref="PostgresProviderOptions.VacuumJobsAfter"/>
    /// of them this process vacuums the table itself, one vacuum at a time, skipping it when another session holds it.
    /// </summary>
    private void NoteFinished(int count)
    {
        if (_vacuumAfter > 0 && Interlocked.Add(ref _finishedSinceVacuum, count) >= _vacuumAfter && Volatile.Read(ref _disposed) == 0
            && Interlocked.CompareExchange(ref _vacuuming, 1, 0) == 0)
        {
            Interlocked.Exchange(ref _finishedSinceVacuum, 0);
            _vacuum = VacuumAsync();
        }
    }

    private async Task VacuumAsync()
    {
        try
        {
            await Task.Yield();
            // Not in a transaction (VACUUM refuses one): a pooled connection runs it on its own. A role that does not own the
            // table gets a warning from the server and nothing happens, which costs one round trip per round.
            await using var command = _dataSource.CreateCommand($"VACUUM (SKIP_LOCKED) {_s}.jobs");
            await command.ExecuteNonQueryAsync(_stop.Token).ConfigureAwait(false);
            Vacuums++;
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // Stopping.
        }
        catch (Exception ex)
        {
            Log.MaintenanceFailed(_logger, "vacuum of the jobs table", ex);
        }
        finally
        {
            Volatile.Write(ref _vacuuming, 0);
        }
    }

    public async ValueTask EnqueueAsync(IReadOnlyList<Job> jobs, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(jobs);
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var batch = new NpgsqlBatch(connection);
        if (AddEnqueue(batch, jobs))
        {
            await KeptConnections.PrepareAsync(batch, _multiplexing, cancellationToken).ConfigureAwait(false);
            await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            Wake(jobs);
        }
    }

    /// <summary>
    /// Wakes idle workers of the queues <paramref name="jobs"/> went to, after their commit. NOTIFY is sent outside
    /// the enqueuing transaction (a notifying commit holds a database-wide lock) and coalesced per queue: while one
    /// is in flight, further requests collapse into one more.
    /// </summary>
    internal void Wake(IReadOnlyList<Job> jobs)
    {
        foreach (var queue in jobs.Where(j => j.NotBefore is null).Select(j => j.Queue).Distinct(StringComparer.Ordinal))
        {
            // 0 idle, 1 sending, 2 sending and asked again.
            if (_wakeState.AddOrUpdate(queue, 1, (_, state) => Math.Min(state + 1, 2)) == 1)
            {
                _ = NotifyAsync(queue);
            }
        }
    }

    private async Task NotifyAsync(string queue)
    {
        while (true)
        {
            try
            {
                await using var command = _dataSource.CreateCommand("SELECT pg_notify($1, $2)");
                command.Parameters.AddWithValue(_channel);
                command.Parameters.AddWithValue(queue);
                await command.ExecuteNonQueryAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or ObjectDisposedException)
            {
                // A lost wake-up only delays: idle workers poll.
            }

            if (_wakeState.TryUpdate(queue, 0, 1))
            {
                return;
            }

            _wakeState[queue] = 1;
        }
    }

    /// <summary>Adds the insert of <paramref name="jobs"/> to a batch, so a store can enqueue inside its own transaction (then <see cref="Wake"/> after commit).</summary>
    internal bool AddEnqueue(NpgsqlBatch batch, IReadOnlyList<Job> jobs)
    {
        if (jobs.Count == 0)
        {
            return false;
        }

        // The columns filled in one pass; a job without a start time starts now (coalesce in the statement).
        var ids = new string[jobs.Count];
        var queues = new string[jobs.Count];
        var priorities = new short[jobs.Count];
        var notBefore = new DateTimeOffset?[jobs.Count];
        var payloads = new string[jobs.Count];
        for (var k = 0; k < jobs.Count; k++)
        {
            var job = jobs[k];
            (ids[k], queues[k], priorities[k], notBefore[k], payloads[k]) = (JobId(job), job.Queue, (short)job.Priority, job.NotBefore, JobCodec.Serialize(job));
        }

        var insert = new NpgsqlBatchCommand(_sql.Insert);
        insert.Parameters.AddWithValue(ids);
        insert.Parameters.AddWithValue(queues);
        insert.Parameters.AddWithValue(priorities);
        insert.Parameters.Add(new NpgsqlParameter<DateTimeOffset?[]> { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz, TypedValue = notBefore });
        insert.Parameters.Add(new NpgsqlParameter<string[]> { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Jsonb, TypedValue = payloads });
        batch.BatchCommands.Add(insert);
        return true;
    }

    /// <summary>Adds the insert of jobs already leased (eagerly started children) to a batch.</summary>
    internal void AddLeased(NpgsqlBatch batch, IReadOnlyList<LeasedJob> jobs)
    {
        if (jobs.Count == 0)
        {
            return;
        }

        var ids = new string[jobs.Count];
        var queues = new string[jobs.Count];
        var priorities = new short[jobs.Count];
        var payloads = new string[jobs.Count];
        var tokens = new Guid[jobs.Count];
        var expires = new DateTimeOffset[jobs.Count];
        for (var k = 0; k < jobs.Count; k++)
        {
            var (job, token, expiresAt) = (jobs[k].Job, jobs[k].LeaseToken, jobs[k].LeaseExpiresAt);
            (ids[k], queues[k], priorities[k], payloads[k], tokens[k], expires[k]) = (JobId(job), job.Queue, (short)job.Priority, JobCodec.Serialize(job), token, expiresAt);
        }

        var insert = new NpgsqlBatchCommand(_sql.InsertLeased);
        insert.Parameters.AddWithValue(ids);
        insert.Parameters.AddWithValue(queues);
        insert.Parameters.AddWithValue(priorities);
        insert.Parameters.Add(new NpgsqlParameter<string[]> { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Jsonb, TypedValue = payloads });
        insert.Parameters.AddWithValue(tokens);
        insert.Parameters.AddWithValue(expires);
        batch.BatchCommands.Add(insert);
    }

    /// <summary>Adds the fenced delete of finished jobs to a batch.</summary>
    internal void AddAcks(NpgsqlBatch batch, IReadOnlyList<LeasedJob> jobs)
    {
        if (jobs.Count == 0)
        {
            return;
        }

        var ids = new string[jobs.Count];
        var tokens = new Guid[jobs.Count];
        for (var k = 0; k < jobs.Count; k++)
        {
            (ids[k], tokens[k]) = (JobId(jobs[k].Job), jobs[k].LeaseToken);
        }

        var ack = new NpgsqlBatchCommand(_sql.Ack);
        ack.Parameters.AddWithValue(ids);
        ack.Parameters.AddWithValue(tokens);
        batch.BatchCommands.Add(ack);
        NoteFinished(jobs.Count);
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

            List<Unreadable> poison;
            await using (var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false))
            {
                poison = await ClaimAsync(connection, queue, want, lease, result, cancellationToken).ConfigureAwait(false);
            }

            await DeadLetterAsync(poison, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    /// <summary>A claimed row nobody can read.</summary>
    internal readonly record struct Unreadable(string Queue, string Id, Guid Token, string Payload);

    /// <summary>
    /// Leases up to <paramref name="want"/> ready jobs of <paramref name="queue"/> (taking lapsed leases back first) into
    /// <paramref name="into"/>, highest priority first; returns the claimed rows that are not jobs, for <see cref="DeadLetterAsync(IReadOnlyList{Unreadable}, CancellationToken)"/>
    /// once the claim is committed.
    /// </summary>
    internal async Task<List<Unreadable>> ClaimAsync(NpgsqlConnection connection, string queue, int want, TimeSpan lease, List<LeasedJob> into, CancellationToken cancellationToken)
    {
        // One implicit transaction that waits for no lock (SKIP LOCKED) and holds its rows only until it commits.
        await using var batch = new NpgsqlBatch(connection) { BatchCommands = { Reclaim(queue) } };

        var claim = new NpgsqlBatchCommand(_sql.Claim);
        claim.Parameters.AddWithValue(queue);
        claim.Parameters.AddWithValue(want);
        claim.Parameters.AddWithValue(lease.TotalMilliseconds);
        batch.BatchCommands.Add(claim);
        var poison = new List<Unreadable>();
        var claimed = new List<(LeasedJob Job, short Priority, long Seq)>();
        await KeptConnections.PrepareAsync(batch, _multiplexing, cancellationToken).ConfigureAwait(false);
        await using (var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var id = reader.GetString(0);
                var payload = reader.GetString(1);
                var token = reader.GetGuid(2);
                if (JobCodec.TryParse(payload) is { } job)
                {
                    claimed.Add((new LeasedJob(job, token, reader.GetInt32(3), reader.GetFieldValue<DateTimeOffset>(4)), reader.GetInt16(5), reader.GetInt64(6)));
                }
                else
                {
                    poison.Add(new Unreadable(queue, id, token, payload));
                }
            }
        }

        // RETURNING comes back in storage order: hand the batch out highest priority first, oldest first within.
        into.AddRange(claimed.OrderByDescending(c => c.Priority).ThenBy(c => c.Seq).Select(c => c.Job));
        return poison;
    }

    private NpgsqlBatchCommand Reclaim(string queue)
    {
        var reclaim = new NpgsqlBatchCommand(_sql.Reclaim);
        reclaim.Parameters.AddWithValue(queue);
        return reclaim;
    }

    /// <summary>A job nobody can read goes to the dead letters; it never reaches (or stalls) a worker.</summary>
    internal async Task DeadLetterAsync(IReadOnlyList<Unreadable> poison, CancellationToken cancellationToken)
    {
        foreach (var p in poison)
        {
            await DeadLetterAsync(JobCodec.Unreadable(p.Queue, p.Payload, _time.GetUtcNow()), p.Id, p.Token, cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask WaitAsync(IReadOnlyList<string> queues, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        EnsureListening();
        var signals = queues.Select(q => _signals.GetOrAdd(q, _ => NewSignal()).Task).ToList();
        await using var command = _dataSource.CreateCommand(
            $"SELECT (SELECT min(not_before) FROM {_s}.jobs WHERE queue = ANY($1) AND lease_token IS NULL), (SELECT min(lease_expires) FROM {_s}.jobs WHERE queue = ANY($1) AND lease_token IS NOT NULL), now()");
        command.Parameters.AddWithValue(queues.ToArray());
        var wait = timeout;
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var now = reader.GetFieldValue<DateTimeOffset>(2);
            for (var column = 0; column < 2; column++)
            {
                if (!reader.IsDBNull(column) && reader.GetFieldValue<DateTimeOffset>(column) - now is var due && due < wait)
                {
                    wait = due;
                }
            }
        }

        await WakeWait.WaitAsync(signals, wait, _time, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<IReadOnlyList<bool>> ExtendLeasesAsync(IReadOnlyList<LeasedJob> jobs, TimeSpan lease, CancellationToken cancellationToken = default)
    {
        // A row locked by someone else is skipped, never waited for: it is being acked, released or reclaimed, so there is no
        // lease left to extend, and a heartbeat holding some rows while it waits for another could deadlock with a completion
        // acking several jobs of one execution.
        await using var command = _dataSource.CreateCommand(
            $"WITH held AS (SELECT j.id FROM {_s}.jobs j JOIN unnest($1::text[], $2::uuid[]) AS u(id, token) ON j.id = u.id AND j.lease_token = u.token FOR UPDATE OF j SKIP LOCKED) " +
            $"UPDATE {_s}.jobs j SET lease_expires = now() + $3 * interval '1 millisecond' WHERE j.id = ANY(ARRAY(SELECT id FROM held)) RETURNING j.id, j.lease_token");
        command.Parameters.AddWithValue(jobs.Select(j => JobId(j.Job)).ToArray());
        command.Parameters.AddWithValue(jobs.Select(j => j.LeaseToken).ToArray());
        command.Parameters.AddWithValue(lease.TotalMilliseconds);
        var held = new HashSet<(string, Guid)>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                held.Add((reader.GetString(0), reader.GetGuid(1)));
            }
        }

        return [.. jobs.Select(j => held.Contains((JobId(j.Job), j.LeaseToken)))];
    }

    public async ValueTask<bool> AckAsync(LeasedJob job, CancellationToken cancellationToken = default)
    {
        await using var command = _dataSource.CreateCommand($"DELETE FROM {_s}.jobs WHERE id = $1 AND lease_token = $2");
        command.Parameters.AddWithValue(JobId(job.Job));
        command.Parameters.AddWithValue(job.LeaseToken);
        var acked = await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
        NoteFinished(1);
        return acked;
    }

    public async ValueTask<bool> ReleaseAsync(LeasedJob job, TimeSpan delay, CancellationToken cancellationToken = default)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var batch = new NpgsqlBatch(connection);
        var release = new NpgsqlBatchCommand(
            $"UPDATE {_s}.jobs SET lease_token = NULL, lease_expires = NULL, deliveries = deliveries - 1, not_before = now() + $3 * interval '1 millisecond' WHERE id = $1 AND lease_token = $2");
        release.Parameters.AddWithValue(JobId(job.Job));
        release.Parameters.AddWithValue(job.LeaseToken);
        release.Parameters.AddWithValue(delay.TotalMilliseconds);
        batch.BatchCommands.Add(release);
        if (delay <= TimeSpan.Zero)
        {
            var notify = new NpgsqlBatchCommand("SELECT pg_notify($1, $2)");
            notify.Parameters.AddWithValue(_channel);
            notify.Parameters.AddWithValue(job.Job.Queue);
            batch.BatchCommands.Add(notify);
        }

        await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return release.RecordsAffected == 1;
    }

    public async ValueTask DeadLetterAsync(DeadLetter entry, LeasedJob? job, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(entry);
        await DeadLetterAsync(entry, job is null ? null : JobId(job.Job), job?.LeaseToken, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<IReadOnlyList<DeadLetter>> ListDeadLettersAsync(int max, CancellationToken cancellationToken = default)
    {
        await using var command = _dataSource.CreateCommand($"SELECT entry::text FROM {_s}.dead_letters ORDER BY at DESC, id DESC LIMIT $1");
        command.Parameters.AddWithValue(max);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var entries = new List<DeadLetter>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            entries.Add(JobCodec.ParseDeadLetter(reader.GetString(0))!);
        }

        return entries;
    }

    public async ValueTask<DeadLetter?> TakeDeadLetterAsync(Guid id, CancellationToken cancellationToken = default)
    {
        await using var command = _dataSource.CreateCommand($"DELETE FROM {_s}.dead_letters WHERE id = $1 RETURNING entry::text");
        command.Parameters.AddWithValue(id);
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is string json
            ? JobCodec.ParseDeadLetter(json)
            : null;
    }

    public async ValueTask<long> GetDepthAsync(string queue, CancellationToken cancellationToken = default)
    {
        await using var command = _dataSource.CreateCommand($"SELECT count(*) FROM {_s}.jobs WHERE queue = $1 AND lease_token IS NULL");
        command.Parameters.AddWithValue(queue);
        return (long)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>Test and operations seam: a row whose payload is not a job, as a corrupted or foreign writer would leave.</summary>
    internal async Task InjectRawAsync(string queue, string payloadJson)
    {
        await using var command = _dataSource.CreateCommand($"INSERT INTO {_s}.jobs (id, queue, priority, not_before, payload) VALUES ($1, $2, 9, now(), $3::jsonb)");
        command.Parameters.AddWithValue("poison-" + Guid.NewGuid().ToString("N"));
        command.Parameters.AddWithValue(queue);
        command.Parameters.AddWithValue(payloadJson);
        await command.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        // Registered as itself and as IJobQueue, so the container disposes it twice.
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        await _vacuum.ConfigureAwait(false);
        if (_listener is not null)
        {
            try
            {
                await _listener.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Stopped.
            }
        }

        _stop.Dispose();
    }

    internal static string JobId(Job job) => JobCodec.Id(job);

    private async Task DeadLetterAsync(DeadLetter entry, string? jobId, Guid? token, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var batch = new NpgsqlBatch(connection);
        var insert = new NpgsqlBatchCommand($"INSERT INTO {_s}.dead_letters (id, at, entry) VALUES ($1, $2, $3::jsonb)");
        insert.Parameters.AddWithValue(entry.Id);
        insert.Parameters.AddWithValue(entry.At);
        insert.Parameters.AddWithValue(JobCodec.Serialize(entry));
        batch.BatchCommands.Add(insert);
        if (jobId is not null)
        {
            var delete = new NpgsqlBatchCommand($"DELETE FROM {_s}.jobs WHERE id = $1 AND lease_token = $2");
            delete.Parameters.AddWithValue(jobId);
            delete.Parameters.AddWithValue(token!.Value);
            batch.BatchCommands.Add(delete);
        }

        await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private void EnsureListening()
    {
        if (_listener is not null)
        {
            return;
        }

        lock (_listenLock)
        {
            _listener ??= Task.Run(() => ListenAsync(_stop.Token));
        }
    }

    /// <summary>
    /// One connection per process LISTENs; a lost connection is reopened (polling covers the gap). A multiplexing data source
    /// cannot wait for notifications: there idle workers only poll.
    /// </summary>
    private async Task ListenAsync(CancellationToken cancellationToken)
    {
        if (_multiplexing)
        {
            return;
        }

        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
                connection.Notification += (_, e) =>
                {
                    if (_signals.TryGetValue(e.Payload, out var signal) && _signals.TryUpdate(e.Payload, NewSignal(), signal))
                    {
                        signal.TrySetResult();
                    }
                };
                await using (var listen = new NpgsqlCommand($"LISTEN {_channel}", connection))
                {
                    await listen.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }

                while (!cancellationToken.IsCancellationRequested)
                {
                    await connection.WaitAsync(cancellationToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or System.Net.Sockets.SocketException or IOException or InvalidOperationException)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(500), _time, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The statements of the hot paths, made once from the schema name, not per claim, enqueue and ack.</summary>
    private sealed class Statements(string s)
    {
        public readonly string Insert =
            $"INSERT INTO {s}.jobs (id, queue, priority, not_before, payload) " +
            "SELECT id, queue, priority, coalesce(not_before, now()), payload FROM unnest($1::text[], $2::text[], $3::smallint[], $4::timestamptz[], $5::jsonb[]) AS t(id, queue, priority, not_before, payload) " +
            "ON CONFLICT (id) DO NOTHING";

        public readonly string InsertLeased =
            $"INSERT INTO {s}.jobs (id, queue, priority, not_before, payload, lease_token, lease_expires, deliveries) " +
            "SELECT id, queue, priority, now(), payload, token, expires, 1 FROM unnest($1::text[], $2::text[], $3::smallint[], $4::jsonb[], $5::uuid[], $6::timestamptz[]) AS t(id, queue, priority, payload, token, expires) " +
            "ON CONFLICT (id) DO NOTHING";

        public readonly string Ack =
            $"DELETE FROM {s}.jobs j USING unnest($1::text[], $2::uuid[]) AS u(id, token) WHERE j.id = u.id AND j.lease_token = u.token";

        public readonly string Claim =
            $"WITH takes AS (SELECT count(*) FILTER (WHERE nextval('{s}.take_seq') % {InMemoryJobQueue.FairnessInterval} = 0) AS fair FROM generate_series(1, $2)), " +
            $"fair AS (SELECT id FROM {s}.jobs WHERE queue = $1 AND lease_token IS NULL AND not_before <= now() ORDER BY seq LIMIT (SELECT fair FROM takes) FOR UPDATE SKIP LOCKED), " +
            $"prio AS (SELECT id FROM {s}.jobs WHERE queue = $1 AND lease_token IS NULL AND not_before <= now() AND id NOT IN (SELECT id FROM fair) ORDER BY priority DESC, seq LIMIT $2 - (SELECT count(*) FROM fair) FOR UPDATE SKIP LOCKED) " +
            $"UPDATE {s}.jobs j SET lease_token = gen_random_uuid(), lease_expires = now() + $3 * interval '1 millisecond', deliveries = j.deliveries + 1 " +
            // ANY(ARRAY(...)) keeps the update on the primary key; a join on the CTEs planned a full scan.
            "WHERE j.id = ANY(ARRAY(SELECT id FROM fair UNION ALL SELECT id FROM prio)) " +
            "RETURNING j.id, j.payload::text, j.lease_token, j.deliveries, j.lease_expires, j.priority, j.seq";

        public readonly string Reclaim =
            $"UPDATE {s}.jobs SET lease_token = NULL, lease_expires = NULL WHERE queue = $1 AND lease_token IS NOT NULL AND lease_expires <= now()";
    }
}
