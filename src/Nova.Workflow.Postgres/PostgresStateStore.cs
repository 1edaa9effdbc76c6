using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Nova.Workflow.Hosting;
using Nova.Workflow.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Nova.Workflow.Postgres;

/// <summary>
/// The state store on PostgreSQL. A transition is one transaction: lock the execution row
/// (<c>FOR UPDATE</c>), apply the shared state machine, write the row back, append history and — when
/// the queue is PostgreSQL too — insert the ready jobs and ack the finished one, then commit. Leases use
/// the database clock (<c>now()</c>).
/// </summary>
internal sealed class PostgresStateStore : IStateStore, IClaimingStateStore, IExecutionStatusReader, IAsyncDisposable, IDisposable
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly KeptConnections _kept;
    private readonly bool _multiplexing;
    private readonly WorkflowRegistry _registry;
    private readonly NovaWorkflowOptions _options;
    private readonly PostgresJobQueue? _queue;
    private readonly string _s;
    private readonly Statements _sql;
    private readonly GroupCommit<CompleteNodeRequest, CompleteNodeResult>[] _completions;
    private readonly GroupCommit<NewExecution, CreateExecutionResult> _creates;
    private readonly TimeProvider _time;

    // Plans whose node names this store has written to the plans table (once per plan and process).
    private readonly ConditionalWeakTable<ExecutionPlan, object> _storedPlans = new();

    // Large running executions as this process last wrote them, with the revision they were written at. See LockAllAsync.
    private const int RememberFromNodes = 100;
    private const int RememberAtMost = 16;
    private readonly ConcurrentDictionary<Guid, (long Revision, ExecutionState State)> _recent = new();

    // The chunks of a large execution's nodes as last read or written in the transaction holding it, by state: a transition
    // writes only the chunks whose bytes differ. Set before the commit (the next holder of the row lock may take the state
    // from _recent at once) and dropped when the commit fails; a state without one writes every chunk.
    private readonly ConditionalWeakTable<ExecutionState, byte[][]> _chunkImages = new();

    // Node names read back for workflow versions this process has not registered.
    private readonly ConcurrentDictionary<(string Workflow, int Version), ExecutionPlan> _namingPlans = new();

    // The database clock minus this process's, from the last clock read (ticks); long.MinValue until the first.
    private long _clockOffset = long.MinValue;

    public PostgresStateStore(NpgsqlDataSource dataSource, IOptions<PostgresProviderOptions> providerOptions, IOptions<NovaWorkflowOptions> options, WorkflowRegistry registry, IJobQueue queue, TimeProvider time)
    {
        _dataSource = dataSource;
        _time = time;

        // One connection for each batch the lanes below can have in flight (two creates, one completion per lane), and one
        // for a claim or a single transition besides. A multiplexing data source shares its connections by itself.
        _multiplexing = KeptConnections.Multiplexes(dataSource);
        _kept = new KeptConnections(dataSource, time, capacity: _multiplexing ? 0 : 5);
        _registry = registry;
        _options = options.Value;
        _s = providerOptions.Value.Schema;
        _sql = new Statements(_s);

        // Same database for queue and state: ready jobs are inserted in the transition's own transaction.
        _queue = queue as PostgresJobQueue;

        // Two lanes, one commit in flight on each: one flushes to disk while the other's batch is applied. An execution
        // always completes on the same lane, so two commits never rewrite one document at once (the second would wait
        // for the first's row lock, and a large execution would be written twice as often for half the nodes each).
        _creates = new(batch => _kept.RunAsync(connection => CreateBatchAsync(connection, batch), CancellationToken.None), maxBatch: 256, maxInFlight: 2);
        _completions = [.. Enumerable.Range(0, 2).Select(_ => new GroupCommit<CompleteNodeRequest, CompleteNodeResult>(
            batch => _kept.RunAsync(connection => CompleteBatchAsync(connection, batch), CancellationToken.None), maxBatch: 256, maxInFlight: 1))];
    }

    /// <summary>The connections kept between transactions (for tests).</summary>
    internal KeptConnections Kept => _kept;

    /// <summary>Closes the connections kept between transactions.</summary>
    public ValueTask DisposeAsync() => _kept.DisposeAsync();

    /// <inheritdoc cref="DisposeAsync"/>
    public void Dispose() => _kept.Dispose();

    public async ValueTask<CreateExecutionResult> CreateExecutionAsync(NewExecution execution, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(execution);
        if (!_storedPlans.TryGetValue(execution.Plan, out _) && !GroupCommitted(execution))
        {
            // A group commit stores a new plan in its own batch; a create on its own stores it first.
            await StorePlanAsync(execution.Plan, cancellationToken).ConfigureAwait(false);
        }

        // An idempotency conflict whose row retention removed in between: the key is free again, so try once more.
        for (var attempt = 0; attempt < 3; attempt++)
        {
            if (await TryCreateAsync(execution, cancellationToken).ConfigureAwait(false) is { } result)
            {
                return result;
            }
        }

        throw new InvalidOperationException($"Execution {execution.Id} could not be created: its idempotency key kept conflicting with expiring executions.");
    }

    private async Task<CreateExecutionResult?> TryCreateAsync(NewExecution execution, CancellationToken cancellationToken)
    {
        if (GroupCommitted(execution))
        {
            // Queued for a group commit it cannot leave: a start the caller gave up on may still happen, as with any start
            // whose reply was lost.
            cancellationToken.ThrowIfCancellationRequested();
            return await _creates.SubmitAsync(execution).ConfigureAwait(false);
        }

        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        var now = await NowAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
        ObserveClock(now);
        var state = new ExecutionState(execution, now);
        var transition = state.Start(now);
        using (var document = DocumentWriter.Write(state))
        await using (var insert = new NpgsqlCommand(_sql.InsertExecution, connection, transaction))
        {
            AddInsertParameters(insert.Parameters, execution, state, now, document);
            if (await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0)
            {
                await using var existing = new NpgsqlCommand($"SELECT id FROM {_s}.executions WHERE idempotency_key = $1", connection, transaction);
                existing.Parameters.AddWithValue(execution.IdempotencyKey!);
                return await existing.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is Guid id
                    ? new CreateExecutionResult(id, false, StoreTransition.None)
                    : null;
            }
        }

        if (DocumentChunks.IsChunked(state))
        {
            await using var chunks = new NpgsqlBatch(connection, transaction);
            AddChunks(chunks, [state]);
            await chunks.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        transition = await WriteJobsAsync(connection, transaction, transition, cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        if (transition.JobsEnqueued)
        {
            _queue!.Wake(transition.Jobs);
        }
        return new CreateExecutionResult(execution.Id, true, transition);
    }

    /// <summary>Whether the create goes in a group commit: one without an idempotency key.</summary>
    private static bool GroupCommitted(NewExecution execution) => execution.IdempotencyKey is null;

    /// <summary>
    /// Starts without an idempotency key cannot conflict (their ids are new), so they go in group commits: the starts that
    /// arrive while one is in flight insert their execution rows and root jobs together, in one batch (one round trip, one
    /// implicit transaction, all or nothing). Timestamps come from the database clock as last observed.
    /// </summary>
    private async Task<CreateExecutionResult[]> CreateBatchAsync(NpgsqlConnection connection, NewExecution[] executions)
    {
        if (Interlocked.Read(ref _clockOffset) == long.MinValue)
        {
            // The process's first batch reads the database clock (a burst of starts into a fresh host used to go one by one,
            // each reading it in a transaction of its own, until one had).
            ObserveClock(await NowAsync(connection, null, CancellationToken.None).ConfigureAwait(false));
        }

        var now = _time.GetUtcNow().AddTicks(Interlocked.Read(ref _clockOffset));
        var results = new CreateExecutionResult[executions.Length];
        var documents = new DocumentWriter[executions.Length];
        var jobs = new List<Job>();
        try
        {
            var states = new ExecutionState[executions.Length];
            for (var k = 0; k < executions.Length; k++)
            {
                states[k] = new ExecutionState(executions[k], now);
                var transition = states[k].Start(now);
                results[k] = new CreateExecutionResult(executions[k].Id, true, transition);
                jobs.AddRange(transition.Jobs);
                documents[k] = DocumentWriter.Write(states[k]);
            }

            await using var batch = new NpgsqlBatch(connection);

            // Plans first seen here are stored in the same transaction: a hundred new workflows started at once cost one commit,
            // not a hundred (their first starts took 1.3 s on this machine's disk, each plan committing on its own).
            var newPlans = executions.Select(e => e.Plan).Where(plan => !_storedPlans.TryGetValue(plan, out _)).Distinct().ToArray();
            if (newPlans.Length > 0)
            {
                var plans = new NpgsqlBatchCommand($"INSERT INTO {_s}.plans (workflow, version, nodes) SELECT * FROM unnest($1::text[], $2::int[], $3::bytea[]) ON CONFLICT DO NOTHING");
                plans.Parameters.AddWithValue(Array.ConvertAll(newPlans, plan => plan.Workflow));
                plans.Parameters.AddWithValue(Array.ConvertAll(newPlans, plan => plan.Version));
                plans.Parameters.AddWithValue(Array.ConvertAll(newPlans, PlanNames));
                batch.BatchCommands.Add(plans);
            }

            var insert = new NpgsqlBatchCommand(_sql.InsertExecutions);
            insert.Parameters.AddWithValue(Array.ConvertAll(executions, e => e.Id));
            insert.Parameters.AddWithValue(Array.ConvertAll(executions, e => e.Plan.Workflow));
            insert.Parameters.AddWithValue(Array.ConvertAll(executions, e => e.Plan.Version));
            insert.Parameters.AddWithValue(Array.ConvertAll(states, s => (short)s.Status));
            insert.Parameters.AddWithValue(now);
            insert.Parameters.Add(new NpgsqlParameter<ReadOnlyMemory<byte>[]> { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea, TypedValue = Array.ConvertAll(documents, d => d.Written) });
            batch.BatchCommands.Add(insert);
            AddChunks(batch, states);
            var enqueued = _queue is not null && _queue.AddEnqueue(batch, jobs);

            // Npgsql sends a batch with one Sync: PostgreSQL runs it as one implicit transaction, all or nothing.
            await KeptConnections.PrepareAsync(batch, _multiplexing, CancellationToken.None).ConfigureAwait(false);
            await batch.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
            foreach (var plan in newPlans)
            {
                _storedPlans.AddOrUpdate(plan, plan);
            }

            if (enqueued)
            {
                _queue!.Wake(jobs);
                for (var k = 0; k < results.Length; k++)
                {
                    results[k] = results[k] with { Transition = results[k].Transition with { JobsEnqueued = true } };
                }
            }

            return results;
        }
        finally
        {
            foreach (var document in documents)
            {
                document?.Dispose();
            }
        }
    }

    private static void AddInsertParameters(NpgsqlParameterCollection parameters, NewExecution execution, ExecutionState state, DateTimeOffset now, DocumentWriter document)
    {
        parameters.AddWithValue(execution.Id);
        parameters.AddWithValue(execution.Plan.Workflow);
        parameters.AddWithValue(execution.Plan.Version);
        parameters.AddWithValue((short)state.Status);
        parameters.AddWithValue(now);
        parameters.AddWithValue((object?)execution.IdempotencyKey ?? DBNull.Value);
        parameters.Add(document.Parameter());
    }

    private void ObserveClock(DateTimeOffset databaseNow) =>
        Interlocked.Exchange(ref _clockOffset, (databaseNow - _time.GetUtcNow()).Ticks);

    public async ValueTask<StartNodeResult> TryStartNodeAsync(StartNodeRequest request, CancellationToken cancellationToken = default)
    {
        await using var scope = await LockAsync(request.Job.Job.ExecutionId, cancellationToken).ConfigureAwait(false);
        if (scope is null)
        {
            return new StartNodeResult { Outcome = StartOutcome.Stale };
        }

        (RateLimit Rate, string Handler)? needed = null;
        var result = scope.State.TryStart(request, scope.Now, (rate, handler) =>
        {
            needed = (rate, handler);
            return TimeSpan.FromTicks(1);
        });
        if (result.Outcome == StartOutcome.RateLimited && needed is { } ask)
        {
            var wait = await AcquireRateAsync(scope, ask.Rate, ask.Handler, cancellationToken).ConfigureAwait(false);
            result = wait > TimeSpan.Zero
                ? new StartNodeResult { Outcome = StartOutcome.RateLimited, RetryAfter = wait }
                : scope.State.TryStart(request, scope.Now, (_, _) => TimeSpan.Zero);
        }

        if (result.Outcome is StartOutcome.Stale or StartOutcome.Duplicate)
        {
            return result;
        }

        // Started, paused, rate limited after a takeover, or worker lost: persist whatever changed.
        var transition = await SaveAsync(scope, result.Transition, cancellationToken).ConfigureAwait(false);
        return result with { Transition = transition };
    }

    public bool CanClaim => _queue is not null;

    /// <summary>
    /// Claims jobs (taking lapsed leases back first) in one implicit transaction, then starts their plain nodes in a second one
    /// that locks the executions in id order. The claim commits before any execution lock is awaited: a transaction holding
    /// freshly claimed job rows while it waits for an execution deadlocks with the completion holding that execution and acking
    /// (or inserting) one of those rows, and the completion it aborts throws away a finished run.
    /// </summary>
    public async ValueTask<IReadOnlyList<(LeasedJob Job, StartNodeResult? Start)>> ClaimAndStartAsync(string queue, int maxCount, ContinuationOffer worker, CancellationToken cancellationToken)
    {
        var claimed = new List<LeasedJob>();
        List<PostgresJobQueue.Unreadable> poison;
        StartNodeResult?[]? starts = null;
        // Kept after the claim only when nothing on it threw, the start included.
        var connection = await _kept.OpenAsync(cancellationToken).ConfigureAwait(false);
        var keep = false;
        try
        {
            poison = await _queue!.ClaimAsync(connection, queue, maxCount, worker.Lease, claimed, cancellationToken).ConfigureAwait(false);
            if (claimed.Count > 0)
            {
                try
                {
                    // Past the claim, finish without the caller's token: the claimed jobs are this worker's now.
                    starts = await StartPlainlyAsync(connection, claimed, worker).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException)
                {
                    // Nothing started: the worker starts each job on its own, as without claim-and-start.
                }
            }

            keep = claimed.Count == 0 || starts is not null;
        }
        finally
        {
            await (keep ? _kept.ReturnAsync(connection) : _kept.DiscardAsync(connection)).ConfigureAwait(false);
        }

        await _queue.DeadLetterAsync(poison, CancellationToken.None).ConfigureAwait(false);
        var result = new (LeasedJob, StartNodeResult?)[claimed.Count];
        for (var k = 0; k < claimed.Count; k++)
        {
            result[k] = (claimed[k], starts?[k]);
        }

        return result;
    }

    /// <summary>Starts the claimed jobs' nodes that start plainly, in one transaction; null for the others.</summary>
    private async Task<StartNodeResult?[]> StartPlainlyAsync(NpgsqlConnection connection, List<LeasedJob> claimed, ContinuationOffer worker)
    {
        var starts = new StartNodeResult?[claimed.Count];
        await using var transaction = await connection.BeginTransactionAsync(CancellationToken.None).ConfigureAwait(false);
        var states = await LockAllAsync(connection, transaction, claimed.Select(j => j.Job.ExecutionId)).ConfigureAwait(false);
        var changed = new HashSet<ExecutionState>();
        for (var k = 0; k < claimed.Count; k++)
        {
            var job = claimed[k];
            if (states.TryGetValue(job.Job.ExecutionId, out var entry) && entry.State.StartsPlainly(job.Job))
            {
                var start = entry.State.TryStart(new StartNodeRequest(job, worker.WorkerId, worker.Lease, worker.MaxWorkerLosses), entry.Now, static (_, _) => TimeSpan.FromTicks(1));
                if (start.Outcome == StartOutcome.Started)
                {
                    changed.Add(entry.State);
                    starts[k] = start;
                }
            }
        }

        await CommitAsync(connection, transaction, changed, [], [], [], states).ConfigureAwait(false);
        return starts;
    }

    public async ValueTask<IReadOnlyList<bool>> HeartbeatAsync(IReadOnlyList<LeasedJob> runs, TimeSpan lease, CancellationToken cancellationToken = default)
    {
        // One transaction per execution, all at once: a heartbeat that lags past the lease would hand live work to another worker.
        var owned = new bool[runs.Count];
        await Task.WhenAll(Enumerable.Range(0, runs.Count).GroupBy(i => runs[i].Job.ExecutionId).Select(async group =>
        {
            await using var scope = await LockAsync(group.Key, cancellationToken).ConfigureAwait(false);
            if (scope is null)
            {
                return;
            }

            var any = false;
            foreach (var i in group)
            {
                owned[i] = scope.State.Heartbeat(runs[i], scope.Now, lease);
                any |= owned[i];
            }

            if (any)
            {
                await SaveAsync(scope, StoreTransition.None, cancellationToken).ConfigureAwait(false);
            }
        })).ConfigureAwait(false);
        return owned;
    }

    /// <summary>
    /// Completions go to the database in group commits: those that arrive while a commit is in flight are applied together
    /// in the next transaction, whatever their executions (each execution locked, read, written once; one history insert,
    /// one enqueue, one ack for all; one commit). One transaction per completion made every finished node pay a commit of
    /// its own, and completions of one execution serialise on its row lock one full document rewrite at a time.
    /// </summary>
    public async ValueTask<CompleteNodeResult> CompleteNodeAsync(CompleteNodeRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var lane = _completions[(request.Run.Job.ExecutionId.GetHashCode() & int.MaxValue) % _completions.Length];
        return await lane.SubmitAsync(request).ConfigureAwait(false);
    }

    private async Task<CompleteNodeResult[]> CompleteBatchAsync(NpgsqlConnection connection, CompleteNodeRequest[] batch)
    {
        // Completions are fenced by their run tokens and time: they never wait on a caller's token once queued.
        var results = new CompleteNodeResult[batch.Length];
        await using var transaction = await connection.BeginTransactionAsync(CancellationToken.None).ConfigureAwait(false);
        var states = await LockAllAsync(connection, transaction, batch.Select(r => r.Run.Job.ExecutionId)).ConfigureAwait(false);
        var changed = new HashSet<ExecutionState>();
        var jobs = new List<Job>();
        var acks = new List<LeasedJob>();
        var started = new List<LeasedJob>();
        for (var k = 0; k < batch.Length; k++)
        {
            var request = batch[k];
            if (!states.TryGetValue(request.Run.Job.ExecutionId, out var entry))
            {
                results[k] = CompleteNodeResult.Rejected;
                continue;
            }

            var result = entry.State.Complete(request, entry.Now);
            if (result.Accepted && _queue is not null)
            {
                // Same database for queue and state: ready children, the ack and an eagerly started child commit together.
                var (transition, next) = entry.State.TryContinue(request, result.Transition, entry.Now);
                result = new CompleteNodeResult(true, transition with { JobsEnqueued = true }, true) { Next = next };
                acks.Add(request.Run);
                if (next is not null)
                {
                    started.Add(next.Job);
                }
            }

            results[k] = result;
            if (result.Accepted)
            {
                changed.Add(entry.State);
                jobs.AddRange(result.Transition.Jobs);
            }
        }

        if (changed.Count > 0)
        {
            await CommitAsync(connection, transaction, changed, jobs, acks, started, states).ConfigureAwait(false);
        }

        return results;
    }

    public async ValueTask<bool> ReleaseNodeAsync(LeasedJob run, CancellationToken cancellationToken = default)
    {
        await using var scope = await LockAsync(run.Job.ExecutionId, cancellationToken).ConfigureAwait(false);
        if (scope is null || !scope.State.Release(run, scope.Now))
        {
            return false;
        }

        await SaveAsync(scope, StoreTransition.None, cancellationToken).ConfigureAwait(false);
        return true;
    }

    public ValueTask<StoreTransition> PauseAsync(Guid executionId, CancellationToken cancellationToken = default) =>
        ControlAsync(executionId, (s, now) => s.Pause(now), cancellationToken);

    public ValueTask<StoreTransition> ResumeAsync(Guid executionId, ReviewDecision? decision, CancellationToken cancellationToken = default) =>
        ControlAsync(executionId, (s, now) => s.Resume(decision, now), cancellationToken);

    public ValueTask<StoreTransition> CancelAsync(Guid executionId, CancellationToken cancellationToken = default) =>
        ControlAsync(executionId, (s, now) => s.Cancel(now), cancellationToken);

    public ValueTask<StoreTransition> RetryAsync(Guid executionId, string? nodeId, CancellationToken cancellationToken = default) =>
        ControlAsync(executionId, (s, now) => s.Retry(nodeId, now), cancellationToken);

    public async ValueTask<ExecutionStatus?> GetStatusAsync(Guid executionId, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand($"SELECT status FROM {_s}.executions WHERE id = $1");
        command.Parameters.AddWithValue(executionId);
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is short status ? (ExecutionStatus)status : null;
    }

    public async ValueTask<ExecutionSnapshot?> GetExecutionAsync(Guid executionId, CancellationToken cancellationToken = default)
    {
        await using var command = _dataSource.CreateCommand($"SELECT workflow, version, state, {ChunksColumn} FROM {_s}.executions e WHERE id = $1");
        command.Parameters.AddWithValue(executionId);
        string workflow;
        int version;
        ExecutionDocument document;
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                return null;
            }

            (workflow, version, document) = (reader.GetString(0), reader.GetInt32(1), ReadDocument(reader, 2, 3));
        }

        var plan = _registry.Find(workflow, version) ?? await NamingPlanAsync(workflow, version, cancellationToken).ConfigureAwait(false);
        return new ExecutionState(document, plan).ToSnapshot();
    }

    private async Task StorePlanAsync(ExecutionPlan plan, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand($"INSERT INTO {_s}.plans (workflow, version, nodes) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING");
        command.Parameters.AddWithValue(plan.Workflow);
        command.Parameters.AddWithValue(plan.Version);
        command.Parameters.AddWithValue(PlanNames(plan));
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        _storedPlans.AddOrUpdate(plan, plan);
    }

    /// <summary>A plan's row in the plans table: UTF-8 JSON <c>[[id, handler], ...]</c> in plan order.</summary>
    private static byte[] PlanNames(ExecutionPlan plan) =>
        JsonSerializer.SerializeToUtf8Bytes(plan.Nodes.Select(n => new[] { n.Id, n.Handler }).ToArray(), PlanNamesContext.Default.StringArrayArray);

    /// <summary>
    /// A plan that only names the nodes (ids and handlers, no edges), from the plans table, for snapshots of a workflow
    /// version this process has not registered.
    /// </summary>
    private async Task<ExecutionPlan> NamingPlanAsync(string workflow, int version, CancellationToken cancellationToken)
    {
        if (_namingPlans.TryGetValue((workflow, version), out var known))
        {
            return known;
        }

        await using var command = _dataSource.CreateCommand($"SELECT nodes FROM {_s}.plans WHERE workflow = $1 AND version = $2");
        command.Parameters.AddWithValue(workflow);
        command.Parameters.AddWithValue(version);
        if (await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is not byte[] utf8)
        {
            throw new WorkflowNotFoundException(workflow, version);
        }

        var nodes = JsonSerializer.Deserialize(utf8, PlanNamesContext.Default.StringArrayArray)!;
        var plan = ExecutionPlan.Create(new WorkflowDefinition(workflow, version, nodes.Select(n => new NodeDefinition(n[0], n[1])), []));
        return _namingPlans.GetOrAdd((workflow, version), plan);
    }

    public async ValueTask<IReadOnlyList<NodeRunRecord>?> GetHistoryAsync(Guid executionId, CancellationToken cancellationToken = default)
    {
        await using var command = _dataSource.CreateCommand(
            $"SELECT e.id IS NOT NULL, r.node_id, r.handler, r.attempt, r.status, r.started_at, r.ended_at, r.worker_id, r.error_type, r.error_message " +
            $"FROM (SELECT $1::uuid AS want) w LEFT JOIN {_s}.executions e ON e.id = w.want LEFT JOIN {_s}.node_runs r ON r.execution_id = e.id ORDER BY r.seq");
        command.Parameters.AddWithValue(executionId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var records = new List<NodeRunRecord>();
        var exists = false;
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            exists = reader.GetBoolean(0);
            if (!reader.IsDBNull(1))
            {
                records.Add(ReadRecord(executionId, reader, 1));
            }
        }

        return exists ? records : null;
    }

    public async ValueTask<IReadOnlyList<ExecutionSummary>> ListExecutionsAsync(ExecutionQuery query, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        await using var command = _dataSource.CreateCommand(
            $"SELECT id, workflow, version, status, created_at, awaiting_review, CASE WHEN awaiting_review THEN state END, CASE WHEN awaiting_review THEN {ChunksColumn} END FROM {_s}.executions e " +
            "WHERE ($1::smallint IS NULL OR status = $1) AND ($2::text IS NULL OR workflow = $2) AND (NOT $3 OR awaiting_review) ORDER BY created_at DESC, id DESC LIMIT $4");
        command.Parameters.AddWithValue(NpgsqlDbType.Smallint, query.Status is { } status ? (short)status : DBNull.Value);
        command.Parameters.AddWithValue(NpgsqlDbType.Text, (object?)query.Workflow ?? DBNull.Value);
        command.Parameters.AddWithValue(query.AwaitingReview);
        command.Parameters.AddWithValue(query.Limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var result = new List<ExecutionSummary>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            IReadOnlyList<string> awaiting = reader.GetBoolean(5)
                ? Restore(reader.GetString(1), reader.GetInt32(2), ReadDocument(reader, 6, 7)).ToSummary().AwaitingReview
                : [];
            result.Add(new ExecutionSummary(reader.GetGuid(0), reader.GetString(1), (ExecutionStatus)reader.GetInt16(3), reader.GetFieldValue<DateTimeOffset>(4), awaiting));
        }

        return result;
    }

    public async ValueTask<IReadOnlyList<HandlerStats>> GetHandlerStatsAsync(DateTimeOffset since, CancellationToken cancellationToken = default)
    {
        // Failures: every outcome but succeeded (0), awaiting review (5) and canceled (6), as the in-memory store counts.
        await using var command = _dataSource.CreateCommand(
            $"SELECT handler, count(*), count(*) FILTER (WHERE status NOT IN (0, 5, 6)), max(ended_at - started_at), avg(ended_at - started_at) " +
            $"FROM {_s}.node_runs WHERE started_at >= $1 GROUP BY handler ORDER BY handler");
        command.Parameters.AddWithValue(since);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var stats = new List<HandlerStats>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            stats.Add(new HandlerStats(reader.GetString(0), (int)reader.GetInt64(1), (int)reader.GetInt64(2), reader.GetTimeSpan(3), reader.GetTimeSpan(4)));
        }

        return stats;
    }

    public async ValueTask<IReadOnlyList<Job>> FindStrandedAsync(DateTimeOffset queuedBefore, int max, CancellationToken cancellationToken = default)
    {
        await using var command = _dataSource.CreateCommand($"SELECT workflow, version, state, now(), {ChunksColumn} FROM {_s}.executions e WHERE status = 1");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var jobs = new List<Job>();
        while (jobs.Count < max && await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            Restore(reader.GetString(0), reader.GetInt32(1), ReadDocument(reader, 2, 4)).CollectStranded(queuedBefore, reader.GetFieldValue<DateTimeOffset>(3), jobs, max);
        }

        return jobs;
    }

    public async ValueTask<int> PurgeFinishedAsync(DateTimeOffset endedBefore, CancellationToken cancellationToken = default)
    {
        Guid[] gone;
        await using (var purge = _dataSource.CreateCommand(
            $"WITH gone AS (DELETE FROM {_s}.executions WHERE ended_at < $1 RETURNING id), " +
            $"runs AS (DELETE FROM {_s}.node_runs r USING gone WHERE r.execution_id = gone.id) SELECT coalesce(array_agg(id), '{{}}') FROM gone"))
        {
            purge.Parameters.AddWithValue(endedBefore);
            gone = (Guid[])(await purge.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        }

        if (gone.Length > 0)
        {
            // History has no foreign key: the statement above deletes it as of its snapshot, which misses rows a transition
            // committed while the purge waited for that execution's lock. A statement of its own sees them.
            await using var late = _dataSource.CreateCommand($"DELETE FROM {_s}.node_runs WHERE execution_id = ANY($1)");
            late.Parameters.AddWithValue(gone);
            await late.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        return gone.Length;
    }

    public async ValueTask<DateTimeOffset> GetTimeAsync(CancellationToken cancellationToken = default)
    {
        await using var command = _dataSource.CreateCommand("SELECT now()");
        return Utc(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false));
    }

    private async ValueTask<StoreTransition> ControlAsync(Guid executionId, Func<ExecutionState, DateTimeOffset, StoreTransition> apply, CancellationToken cancellationToken)
    {
        await using var scope = await LockAsync(executionId, cancellationToken).ConfigureAwait(false) ?? throw new ExecutionNotFoundException(executionId);
        var transition = apply(scope.State, scope.Now);
        return await SaveAsync(scope, transition, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Opens a transaction holding the execution's row lock; null when there is no such execution.</summary>
    private async Task<Scope?> LockAsync(Guid executionId, CancellationToken cancellationToken)
    {
        // This transition reads the row itself and moves its revision on: a remembered state of it would only go stale.
        _recent.TryRemove(executionId, out _);
        var connection = await _kept.OpenAsync(cancellationToken).ConfigureAwait(false);
        NpgsqlTransaction? transaction = null;
        try
        {
            transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            // The clock is read once the row lock is held (not now(), the transaction's start): a transition that waited for the
            // lock must not record a time before the one it waited for (a join starting before its last parent ended).
            await using var command = new NpgsqlCommand(_sql.LockOne, connection, transaction);
            command.Parameters.AddWithValue(executionId);
            await KeptConnections.PrepareAsync(command, _multiplexing, cancellationToken).ConfigureAwait(false);
            string workflow;
            int version;
            ExecutionDocument document;
            DateTimeOffset now;
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    await reader.DisposeAsync().ConfigureAwait(false);
                    await transaction.DisposeAsync().ConfigureAwait(false);
                    await _kept.ReturnAsync(connection).ConfigureAwait(false);
                    return null;
                }

                (workflow, version, document, now) = (reader.GetString(0), reader.GetInt32(1), ReadDocument(reader, 2), reader.GetFieldValue<DateTimeOffset>(3));
            }

            var chunks = document.Chunks > 0 ? (await ReadChunksAsync(connection, transaction, [executionId], cancellationToken).ConfigureAwait(false)).GetValueOrDefault(executionId) : null;
            var state = Restore(workflow, version, document, chunks);
            ObserveClock(now);
            return new Scope(_kept, connection, transaction, state, now);
        }
        catch
        {
            if (transaction is not null)
            {
                await transaction.DisposeAsync().ConfigureAwait(false);
            }

            await _kept.DiscardAsync(connection).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Writes the execution back with its new history (and, fused, its ready jobs and the ack) and commits.</summary>
    private Task<StoreTransition> SaveAsync(Scope scope, StoreTransition transition, CancellationToken cancellationToken) =>
        SaveAsync(scope, transition, [], [], cancellationToken);

    private async Task<StoreTransition> SaveAsync(Scope scope, StoreTransition transition, IReadOnlyList<LeasedJob> acks, IReadOnlyList<LeasedJob> started, CancellationToken cancellationToken)
    {
        var enqueued = await CommitAsync(scope.Connection, scope.Transaction, [scope.State], transition.Jobs, acks, started, null, cancellationToken).ConfigureAwait(false);
        return enqueued ? transition with { JobsEnqueued = true } : transition;
    }

    /// <summary>
    /// Locks the executions in id order (as every multi-row locker here does, so two of them cannot deadlock) and reads
    /// them with the clock taken once the locks are held; executions that do not exist are missing from the answer. A large
    /// execution this process wrote last comes from memory when its revision still matches (the document is not sent).
    /// </summary>
    private async Task<Dictionary<Guid, (ExecutionState State, DateTimeOffset Now, long Revision)>> LockAllAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IEnumerable<Guid> ids)
    {
        var wanted = ids.Distinct().ToArray();
        var known = Array.ConvertAll(wanted, id => _recent.TryGetValue(id, out var entry) ? entry.Revision : -1L);
        var states = new Dictionary<Guid, (ExecutionState State, DateTimeOffset Now, long Revision)>();
        List<Guid>? unread = null;
        List<(Guid Id, string Workflow, int Version, ExecutionDocument Document, long Revision)>? chunked = null;
        DateTimeOffset now = default;
        await using (var select = new NpgsqlCommand(_sql.LockAll, connection, transaction))
        {
            select.Parameters.AddWithValue(wanted);
            select.Parameters.AddWithValue(known);
            await KeptConnections.PrepareAsync(select, _multiplexing, CancellationToken.None).ConfigureAwait(false);
            await using var reader = await select.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
            while (await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false))
            {
                var id = reader.GetGuid(0);
                now = reader.GetFieldValue<DateTimeOffset>(5);
                var revision = reader.GetInt64(3);
                ExecutionState? state = null;
                if (_recent.TryRemove(id, out var entry) && entry.Revision == revision)
                {
                    // Taken out while in use: a transaction that fails after changing it leaves nothing stale behind. (The
                    // document may have been sent anyway, when the revision moved on after this query was written.)
                    state = entry.State;
                }
                else if (!reader.IsDBNull(4))
                {
                    var document = ReadDocument(reader, 4);
                    if (document.Chunks > 0)
                    {
                        (chunked ??= []).Add((id, reader.GetString(1), reader.GetInt32(2), document, revision));
                    }
                    else
                    {
                        state = Restore(reader.GetString(1), reader.GetInt32(2), document);
                    }
                }
                else
                {
                    (unread ??= []).Add(id);
                }

                if (state is not null)
                {
                    states[id] = (state, now, revision);
                }
            }
        }

        if (unread is not null)
        {
            // The remembered state went away between the two looks (a failed transaction dropped it): read the documents.
            await using var select = new NpgsqlCommand($"SELECT id, workflow, version, revision, state FROM {_s}.executions WHERE id = ANY($1)", connection, transaction);
            select.Parameters.AddWithValue(unread.ToArray());
            await KeptConnections.PrepareAsync(select, _multiplexing, CancellationToken.None).ConfigureAwait(false);
            await using var reader = await select.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
            while (await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false))
            {
                var document = ReadDocument(reader, 4);
                if (document.Chunks > 0)
                {
                    (chunked ??= []).Add((reader.GetGuid(0), reader.GetString(1), reader.GetInt32(2), document, reader.GetInt64(3)));
                }
                else
                {
                    states[reader.GetGuid(0)] = (Restore(reader.GetString(1), reader.GetInt32(2), document), now, reader.GetInt64(3));
                }
            }
        }

        if (chunked is not null)
        {
            // Read once the row locks are held, in a statement of its own: its snapshot is taken after them, so it holds the
            // chunks the last holder committed (a subquery of the locking statement would read them as of before its wait).
            var chunks = await ReadChunksAsync(connection, transaction, [.. chunked.Select(c => c.Id)], CancellationToken.None).ConfigureAwait(false);
            foreach (var (id, workflow, version, document, revision) in chunked)
            {
                states[id] = (Restore(workflow, version, document, chunks.GetValueOrDefault(id)), now, revision);
            }
        }

        if (states.Count > 0)
        {
            ObserveClock(now);
        }

        return states;
    }

    /// <summary>
    /// After a commit: keeps the large running executions it wrote in memory with their new revision, so the next transition
    /// on them skips the read. Few are kept; finished ones are not. States read but not written are not kept either (one taken
    /// from memory was removed when taken): only a written state is known to be exactly what the row holds.
    /// </summary>
    private void Remember(Dictionary<Guid, (ExecutionState State, DateTimeOffset Now, long Revision)> read, IReadOnlyCollection<ExecutionState> written)
    {
        foreach (var (id, (state, _, revision)) in read)
        {
            if (written.Contains(state) && state.Nodes.Length >= RememberFromNodes && !state.IsFinished
                && (_recent.Count < RememberAtMost || _recent.ContainsKey(id)))
            {
                state.History.Clear();
                _recent[id] = (revision + 1, state);
            }
        }
    }

    /// <summary>
    /// Writes the executions back with their new history and — when the queue shares the database — their ready jobs, the acks
    /// and eagerly started children, and commits, all in one round trip; then wakes idle workers. Returns whether jobs were enqueued.
    /// </summary>
    private async Task<bool> CommitAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlyCollection<ExecutionState> states, IReadOnlyList<Job> jobs, IReadOnlyList<LeasedJob> acks, IReadOnlyList<LeasedJob> started, Dictionary<Guid, (ExecutionState State, DateTimeOffset Now, long Revision)>? remember = null, CancellationToken cancellationToken = default)
    {
        var documents = new DocumentWriter[states.Count];
        var enqueued = false;
        try
        {
            await using var batch = new NpgsqlBatch(connection, transaction);
            if (states.Count > 0)
            {
                var ids = new Guid[states.Count];
                var statuses = new short[states.Count];
                var ended = new DateTimeOffset?[states.Count];
                var review = new bool[states.Count];
                var k = 0;
                foreach (var state in states)
                {
                    ids[k] = state.Id;
                    documents[k] = DocumentWriter.Write(state);
                    statuses[k] = (short)state.Status;
                    ended[k] = state.EndedAt;
                    review[k] = Array.Exists(state.Nodes, n => n.Status == NodeStatus.AwaitingReview);
                    k++;
                }

                var update = new NpgsqlBatchCommand(_sql.Update);
                update.Parameters.AddWithValue(ids);
                update.Parameters.Add(new NpgsqlParameter<ReadOnlyMemory<byte>[]> { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea, TypedValue = [.. documents.Select(d => d.Written)] });
                update.Parameters.AddWithValue(statuses);
                update.Parameters.Add(new NpgsqlParameter<DateTimeOffset?[]> { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz, TypedValue = ended });
                update.Parameters.AddWithValue(review);
                batch.BatchCommands.Add(update);
                AddChunks(batch, states);
                AddHistory(batch, states);
            }

            if (_queue is not null)
            {
                enqueued = _queue.AddEnqueue(batch, jobs);
                _queue.AddAcks(batch, acks);
                _queue.AddLeased(batch, started);
            }

            if (remember is not null)
            {
                // Remembered before the commit, while the row lock is still held: the next transaction on the execution finds
                // it as soon as the lock passes to it. A failed commit forgets it again before the lock is released.
                Remember(remember, states);
            }

            // The commit rides in the same round trip as the writes (PostgreSQL skips it if a write fails, and the transaction
            // is rolled back when it is disposed): one round trip per transition saved.
            batch.BatchCommands.Add(new NpgsqlBatchCommand("COMMIT"));
            await KeptConnections.PrepareAsync(batch, _multiplexing, cancellationToken).ConfigureAwait(false);
            await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // Nothing was written: what the chunk images and the remembered states say the rows hold is no longer true.
            foreach (var state in states)
            {
                _chunkImages.Remove(state);
            }

            foreach (var id in remember?.Keys ?? Enumerable.Empty<Guid>())
            {
                _recent.TryRemove(id, out _);
            }

            throw;
        }
        finally
        {
            foreach (var document in documents)
            {
                document?.Dispose();
            }
        }

        if (enqueued)
        {
            _queue!.Wake(jobs);
        }

        return enqueued;
    }

    /// <summary>Appends the attempts the transitions recorded, for every execution, in one insert.</summary>
    private void AddHistory(NpgsqlBatch batch, IReadOnlyCollection<ExecutionState> states)
    {
        var h = states.SelectMany(s => s.HistoryRecords()).ToArray();
        if (h.Length == 0)
        {
            return;
        }

        // The columns filled in one pass (ten projections made ten iterators and ten arrays grown from them).
        var executions = new Guid[h.Length];
        var nodes = new string[h.Length];
        var handlers = new string[h.Length];
        var attempts = new int[h.Length];
        var statuses = new short[h.Length];
        var started = new DateTimeOffset[h.Length];
        var ended = new DateTimeOffset[h.Length];
        var workers = new string?[h.Length];
        var errorTypes = new string?[h.Length];
        var errorMessages = new string?[h.Length];
        for (var k = 0; k < h.Length; k++)
        {
            var r = h[k];
            (executions[k], nodes[k], handlers[k], attempts[k], statuses[k]) = (r.ExecutionId, r.NodeId, r.Handler, r.Attempt, (short)r.Status);
            (started[k], ended[k], workers[k], errorTypes[k], errorMessages[k]) = (r.StartedAt, r.EndedAt, r.WorkerId, r.ErrorType, r.ErrorMessage);
        }

        var history = new NpgsqlBatchCommand(_sql.InsertHistory);
        history.Parameters.AddWithValue(executions);
        history.Parameters.AddWithValue(nodes);
        history.Parameters.AddWithValue(handlers);
        history.Parameters.AddWithValue(attempts);
        history.Parameters.AddWithValue(statuses);
        history.Parameters.AddWithValue(started);
        history.Parameters.AddWithValue(ended);
        history.Parameters.AddWithValue(workers);
        history.Parameters.AddWithValue(errorTypes);
        history.Parameters.AddWithValue(errorMessages);
        batch.BatchCommands.Add(history);
    }

    private async Task<StoreTransition> WriteJobsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, StoreTransition transition, CancellationToken cancellationToken)
    {
        if (_queue is null)
        {
            return transition;
        }

        await using var batch = new NpgsqlBatch(connection, transaction);
        if (!_queue.AddEnqueue(batch, transition.Jobs))
        {
            return transition;
        }

        await KeptConnections.PrepareAsync(batch, _multiplexing, cancellationToken).ConfigureAwait(false);
        await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return transition with { JobsEnqueued = true };
    }

    private async Task<TimeSpan> AcquireRateAsync(Scope scope, RateLimit rate, string handler, CancellationToken cancellationToken)
    {
        // Sliding log per handler, serialised by a transaction-scoped advisory lock on the handler's name.
        await using (var lockCommand = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))", scope.Connection, scope.Transaction))
        {
            lockCommand.Parameters.AddWithValue("nova.rate." + handler);
            await lockCommand.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        long used;
        DateTimeOffset? oldest;
        await using (var count = new NpgsqlCommand(
            $"WITH trimmed AS (DELETE FROM {_s}.rate_events WHERE handler = $1 AND at <= $2) SELECT count(*), min(at) FROM {_s}.rate_events WHERE handler = $1 AND at > $2",
            scope.Connection,
            scope.Transaction))
        {
            count.Parameters.AddWithValue(handler);
            count.Parameters.AddWithValue(scope.Now - rate.Period);
            await using var reader = await count.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            used = reader.GetInt64(0);
            oldest = reader.IsDBNull(1) ? null : reader.GetFieldValue<DateTimeOffset>(1);
        }

        if (used >= rate.Limit)
        {
            var wait = oldest!.Value + rate.Period - scope.Now;
            return wait > TimeSpan.Zero ? wait : TimeSpan.FromMilliseconds(1);
        }

        await using var insert = new NpgsqlCommand($"INSERT INTO {_s}.rate_events (handler, at) VALUES ($1, $2)", scope.Connection, scope.Transaction);
        insert.Parameters.AddWithValue(handler);
        insert.Parameters.AddWithValue(scope.Now);
        await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return TimeSpan.Zero;
    }

    /// <summary>
    /// The state of a stored execution; a large one's nodes come from <paramref name="chunks"/>, which become what its next
    /// write compares its chunks with (so pass them only from a read under the row lock).
    /// </summary>
    private ExecutionState Restore(string workflow, int version, ExecutionDocument document, byte[][]? chunks = null)
    {
        var plan = _registry.Get(workflow, version);
        if (document.Chunks > 0)
        {
            DocumentChunks.Restore(document, chunks);
            if (document.Nodes.Length != plan.NodeCount || document.InEdges.Length != plan.Graph.Parents.Length)
            {
                throw new InvalidDataException($"The chunks of execution {document.Id} hold {document.Nodes.Length} nodes and {document.InEdges.Length} edges; its plan has {plan.NodeCount} and {plan.Graph.Parents.Length}.");
            }
        }

        var state = new ExecutionState(document, plan);
        if (chunks is not null)
        {
            _chunkImages.AddOrUpdate(state, chunks);
        }

        return state;
    }

    /// <summary>A column of the execution aliased <c>e</c>: its chunks in order (null when it has none), for reads without the row lock.</summary>
    private string ChunksColumn => $"(SELECT array_agg(c.state ORDER BY c.chunk) FROM {_s}.execution_chunks c WHERE c.execution_id = e.id)";

    /// <summary>The chunks of the executions that have them, each in chunk order.</summary>
    private async Task<Dictionary<Guid, byte[][]>> ReadChunksAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid[] ids, CancellationToken cancellationToken)
    {
        await using var select = new NpgsqlCommand(_sql.ReadChunks, connection, transaction);
        select.Parameters.AddWithValue(ids);
        await KeptConnections.PrepareAsync(select, _multiplexing, cancellationToken).ConfigureAwait(false);
        await using var reader = await select.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var chunks = new Dictionary<Guid, byte[][]>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            chunks[reader.GetGuid(0)] = reader.GetFieldValue<byte[][]>(1);
        }

        return chunks;
    }

    /// <summary>
    /// Adds the writes of the chunks of large executions that differ from what their rows hold (all of a new one's), and takes
    /// the new bytes as what the rows hold; the caller drops that for every state if the batch fails. The writes are upserts:
    /// a state read from a document of schema version 4 has no chunk rows yet, and a plain update of a missing row would
    /// lose it without an error (measured no slower on the 200-node chain).
    /// </summary>
    private void AddChunks(NpgsqlBatch batch, IEnumerable<ExecutionState> states)
    {
        List<Guid>? ids = null;
        List<int>? numbers = null;
        List<byte[]>? bytes = null;
        DocumentWriter? writer = null;
        try
        {
            foreach (var state in states)
            {
                if (!DocumentChunks.IsChunked(state))
                {
                    continue;
                }

                var count = DocumentChunks.Count(state);
                if (!_chunkImages.TryGetValue(state, out var image) || image.Length != count)
                {
                    image = new byte[count][];
                    _chunkImages.AddOrUpdate(state, image);
                }

                writer ??= DocumentWriter.Take();
                for (var c = 0; c < count; c++)
                {
                    if (!DocumentChunks.TakeChanged(state, c) && image[c] is not null)
                    {
                        continue;
                    }

                    var written = writer.WriteChunk(state, c);
                    if (image[c] is { } held && written.SequenceEqual(held))
                    {
                        continue;
                    }

                    image[c] = written.ToArray();
                    (ids ??= []).Add(state.Id);
                    (numbers ??= []).Add(c);
                    (bytes ??= []).Add(image[c]);
                }
            }
        }
        finally
        {
            writer?.Dispose();
        }

        if (ids is null)
        {
            return;
        }

        var upsert = new NpgsqlBatchCommand(_sql.UpsertChunks);
        upsert.Parameters.AddWithValue(ids.ToArray());
        upsert.Parameters.AddWithValue(numbers!.ToArray());
        upsert.Parameters.AddWithValue(bytes!.ToArray());
        batch.BatchCommands.Add(upsert);
    }

    private static ExecutionDocument ReadDocument(NpgsqlDataReader reader, int column, int chunksColumn)
    {
        var document = ReadDocument(reader, column);
        if (document.Chunks > 0)
        {
            DocumentChunks.Restore(document, reader.IsDBNull(chunksColumn) ? null : reader.GetFieldValue<byte[][]>(chunksColumn));
            document.Chunks = 0;
        }

        return document;
    }

    private static ExecutionDocument ReadDocument(NpgsqlDataReader reader, int column)
    {
        var length = checked((int)reader.GetBytes(column, 0, null, 0, 0));
        var buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            var read = (int)reader.GetBytes(column, 0, buffer, 0, length);
            return JsonSerializer.Deserialize(buffer.AsSpan(0, read), ExecutionDocumentContext.Default.ExecutionDocument)!;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task<DateTimeOffset> NowAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT now()", connection, transaction);
        return Utc(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false));
    }

    // timestamptz arrives as a UTC DateTime.
    private static DateTimeOffset Utc(object? value) => new(DateTime.SpecifyKind((DateTime)value!, DateTimeKind.Utc));

    private static NodeRunRecord ReadRecord(Guid executionId, NpgsqlDataReader reader, int o) => new()
    {
        ExecutionId = executionId,
        NodeId = reader.GetString(o),
        Handler = reader.GetString(o + 1),
        Attempt = reader.GetInt32(o + 2),
        Status = (NodeRunStatus)reader.GetInt16(o + 3),
        StartedAt = reader.GetFieldValue<DateTimeOffset>(o + 4),
        EndedAt = reader.GetFieldValue<DateTimeOffset>(o + 5),
        WorkerId = reader.IsDBNull(o + 6) ? null : reader.GetString(o + 6),
        ErrorType = reader.IsDBNull(o + 7) ? null : reader.GetString(o + 7),
        ErrorMessage = reader.IsDBNull(o + 8) ? null : reader.GetString(o + 8),
    };

    /// <summary>
    /// A transaction holding one execution's row lock, with the state read under it. Disposed, it ends the transaction (a
    /// rollback when nothing committed it) and gives the connection back to be kept; one that cannot end it is closed.
    /// </summary>
    private sealed class Scope(KeptConnections kept, NpgsqlConnection connection, NpgsqlTransaction transaction, ExecutionState state, DateTimeOffset now) : IAsyncDisposable
    {
        public NpgsqlConnection Connection { get; } = connection;
        public NpgsqlTransaction Transaction { get; } = transaction;
        public ExecutionState State { get; } = state;
        public DateTimeOffset Now { get; } = now;

        public async ValueTask DisposeAsync()
        {
            try
            {
                await Transaction.DisposeAsync().ConfigureAwait(false);
            }
            catch
            {
                await kept.DiscardAsync(Connection).ConfigureAwait(false);
                throw;
            }

            await kept.ReturnAsync(Connection).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The statements of the hot paths, made once from the schema name: made per transaction, their text was most of the
    /// strings a transition allocated (about 4 KB per node of a chain), and Npgsql finds a prepared statement by that text.
    /// </summary>
    private sealed class Statements(string s)
    {
        public readonly string InsertExecutions =
            $"INSERT INTO {s}.executions (id, workflow, version, status, created_at, state) " +
            "SELECT u.id, u.workflow, u.version, u.status, $5, u.state FROM unnest($1::uuid[], $2::text[], $3::int[], $4::smallint[], $6::bytea[]) AS u(id, workflow, version, status, state)";

        public readonly string InsertExecution =
            $"INSERT INTO {s}.executions (id, workflow, version, status, created_at, idempotency_key, state) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (idempotency_key) DO NOTHING";

        public readonly string LockOne =
            $"WITH locked AS (SELECT workflow, version, state FROM {s}.executions WHERE id = $1 FOR UPDATE) SELECT workflow, version, state, clock_timestamp() FROM locked";

        public readonly string LockAll =
            $"WITH locked AS (SELECT id, workflow, version, revision, state FROM {s}.executions WHERE id = ANY($1) ORDER BY id FOR UPDATE) " +
            "SELECT l.id, l.workflow, l.version, l.revision, CASE WHEN l.revision = k.revision THEN NULL ELSE l.state END, clock_timestamp() " +
            "FROM locked l JOIN unnest($1::uuid[], $2::bigint[]) AS k(id, revision) ON k.id = l.id";

        public readonly string Update =
            $"UPDATE {s}.executions e SET state = u.state, revision = e.revision + 1, status = u.status, ended_at = u.ended_at, awaiting_review = u.review " +
            "FROM unnest($1::uuid[], $2::bytea[], $3::smallint[], $4::timestamptz[], $5::bool[]) AS u(id, state, status, ended_at, review) WHERE e.id = u.id";

        public readonly string InsertHistory =
            $"INSERT INTO {s}.node_runs (execution_id, node_id, handler, attempt, status, started_at, ended_at, worker_id, error_type, error_message) " +
            "SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::smallint[], $6::timestamptz[], $7::timestamptz[], $8::text[], $9::text[], $10::text[])";

        public readonly string ReadChunks =
            $"SELECT execution_id, array_agg(state ORDER BY chunk) FROM {s}.execution_chunks WHERE execution_id = ANY($1) GROUP BY execution_id";

        public readonly string UpsertChunks =
            $"INSERT INTO {s}.execution_chunks (execution_id, chunk, state) SELECT * FROM unnest($1::uuid[], $2::int[], $3::bytea[]) " +
            "ON CONFLICT (execution_id, chunk) DO UPDATE SET state = excluded.state";
    }
}

/// <summary>Source-generated JSON for the plans table's node names.</summary>
[System.Text.Json.Serialization.JsonSerializable(typeof(string[][]))]
internal sealed partial class PlanNamesContext : System.Text.Json.Serialization.JsonSerializerContext;
