using System.Globalization;
using System.IO.Hashing;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Nova.Workflow.Hosting;
using Nova.Workflow.Storage;
using Nova.Workflow.Storage.InMemory;
using StackExchange.Redis;

namespace Nova.Workflow.Redis;

/// <summary>
/// The state store on Redis: each transition is one Lua script on the execution's keys (one round
/// trip, atomic, lease arithmetic on the server's TIME). On a single server (not Cluster) completions that
/// arrive together share one script, and workers claim and start nodes in one. Finished executions expire by key TTL.
/// </summary>
internal sealed class RedisStateStore : IStateStore, IClaimingStateStore, IStartingStateStore, IExecutionStatusReader
{
    // Per plan, the fingerprint of its fields (the plan hash's name on one server). The fields themselves are made when they
    // are sent, not kept: a 10,000-node plan's are 220,000 values, about 9 MB held for the life of the process.
    private static readonly ConditionalWeakTable<ExecutionPlan, string> PlanFingerprints = new();

    // A fused completion that says nothing more (ScriptResults.Accepted): most of them, so one instance serves.
    private static readonly CompleteNodeResult AcceptedFused = new(true, StoreTransition.None, true);

    private readonly IConnectionMultiplexer _redis;
    private readonly RedisKeys _keys;
    private readonly int _database;
    private readonly WorkflowRegistry _registry;
    private readonly NovaWorkflowOptions _options;
    private readonly RedisJobQueue? _queue;
    private readonly Lazy<bool> _fused;
    private readonly Lazy<bool> _cluster;

    // Per plan, this store's keys and arguments of the fused enqueue that do not change between calls.
    private readonly ConditionalWeakTable<ExecutionPlan, FusedLayout> _layouts = new();

    // The plans this process has stored on the (single) server.
    private readonly ConditionalWeakTable<ExecutionPlan, string> _plansStored = new();

    // On a cluster every create sends its plan's fields (they live in the execution's node hash): kept per plan there only.
    private readonly ConditionalWeakTable<ExecutionPlan, RedisValue[]> _clusterFields = new();

    // Fused completions that arrive together go to Redis as one script, and so do fused creates (of a stored plan, without
    // an idempotency key): one function call, one bulk enqueue per queue and one write per index for the whole batch.
    private readonly GroupCommit<PendingCompletion, (CompleteNodeResult? Result, Exception? Error)> _completions;
    private readonly GroupCommit<PendingCreate, (RedisResult[]? Result, Exception? Error)> _creates;

    public RedisStateStore(IConnectionMultiplexer redis, IOptions<RedisProviderOptions> redisOptions, IOptions<NovaWorkflowOptions> options, WorkflowRegistry registry, IJobQueue queue)
    {
        // With the queue on the same single server, transitions also enqueue (and ack) in the same script.
        _queue = queue as RedisJobQueue;
        _cluster = new Lazy<bool>(IsCluster);
        _fused = new Lazy<bool>(() => _queue is not null && !_cluster.Value);
        _redis = redis;
        _keys = new RedisKeys(redisOptions.Value.Prefix);
        _database = redisOptions.Value.Database;
        _options = options.Value;
        _registry = registry;
        _completions = new(CompleteBatchAsync, maxBatch: 64, maxInFlight: 2);
        _creates = new(CreateBatchAsync, maxBatch: 64, maxInFlight: CreatesInFlight);
    }

    internal RedisKeys Keys => _keys;

    // Creates in flight at once before the next ones wait to go together: measured with 64 callers and busy workers, 4 gave
    // 9,300–9,700 starts/s and 1.0 s of Redis CPU per 10,000 single-node workflows; 2, 8 and 16 less; unbatched 8,200–8,500
    // and 1.2–1.25 s.
    private const int CreatesInFlight = 4;

    private IDatabase Db => _redis.GetDatabase(_database);

    public async ValueTask<CreateExecutionResult> CreateExecutionAsync(NewExecution execution, CancellationToken cancellationToken = default) =>
        (await CreateCoreAsync(execution, null).ConfigureAwait(false)).Result;

    public bool CanStartOnCreate => _fused.Value;

    public ValueTask<(CreateExecutionResult Result, ContinuedStart? Started)> CreateAndStartAsync(NewExecution execution, string queue, ContinuationOffer worker, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(queue);
        ArgumentNullException.ThrowIfNull(worker);
        // One server only: the root's job is written leased in the same script as the execution (fused).
        return CreateCoreAsync(execution, _fused.Value ? new CreateOffer(queue, worker, LeaseTokens.Next()) : null);
    }

    private async ValueTask<(CreateExecutionResult Result, ContinuedStart? Started)> CreateCoreAsync(NewExecution execution, CreateOffer? offer)
    {
        ArgumentNullException.ThrowIfNull(execution);
        var plan = execution.Plan;
        var fused = _fused.Value;
        var layout = fused ? Layout(plan) : null;
        var exec = _keys.Execution(execution.Id);
        var clustered = _cluster.Value;
        var idemKey = execution.IdempotencyKey is { } key ? _keys.Idempotency(key) : default;
        if (execution.IdempotencyKey is not null && clustered)
        {
            // Cluster: the key lives in another slot, so claim it first; a loser returns the winner's id.
            var retention = _options.Retention + TimeSpan.FromDays(7);
            if (!await Db.StringSetAsync(idemKey, execution.Id.ToString("N"), retention, When.NotExists).ConfigureAwait(false))
            {
                var existing = await Db.StringGetAsync(idemKey).ConfigureAwait(false);
                return (new CreateExecutionResult(Guid.ParseExact(existing.ToString(), "N"), false, StoreTransition.None), null);
            }
        }

        // On one server the plan's hash is shared by its executions and, after this process's first create of it, sent only
        // when the server answers that it lacks it (a flushed server). A cluster keeps the plan in each execution's node hash.
        var sendPlan = clustered || !_plansStored.TryGetValue(plan, out _);
        var fields = sendPlan ? PlanFieldsOf(plan, clustered) : null;
        var fingerprint = clustered ? null : Fingerprint(plan, fields);
        var planKey = fingerprint is null ? exec[1] : _keys.Plan(fingerprint);
        var result = layout is not null && !sendPlan && execution.IdempotencyKey is null
            ? await CreateBatchedAsync(new PendingCreate(execution, planKey, layout, offer)).ConfigureAwait(false)
            : await CreateAsync(execution, exec, idemKey, planKey, fields ?? [], layout, clustered, offer).ConfigureAwait(false);
        if (ScriptResults.Code(result) == 3)
        {
            sendPlan = true;
            result = await CreateAsync(execution, exec, idemKey, planKey, fields ?? PlanFieldsOf(plan, clustered), layout, clustered, offer).ConfigureAwait(false);
        }

        if (sendPlan && fingerprint is not null)
        {
            _plansStored.TryAdd(plan, fingerprint);
        }

        if (ScriptResults.Code(result) == 1)
        {
            return (new CreateExecutionResult(Guid.ParseExact((string)result[1]!, "N"), false, StoreTransition.None), null);
        }

        var outcome = ReadCreate(execution, result, fused);
        if (!fused)
        {
            var batch = Db.CreateBatch();
            var index = batch.SortedSetAddAsync(_keys.ExecutionIndex, execution.Id.ToString("N"), ScriptResults.Now(result).ToUnixTimeMilliseconds());
            var active = batch.SetAddAsync(_keys.ActiveIndex, execution.Id.ToString("N"));
            batch.Execute();
            await Task.WhenAll(index, active).ConfigureAwait(false);
        }

        return (outcome, offer is null ? null : ReadEagerStart(execution, result, offer));
    }

    /// <summary>Runs create.lua once: with the plan's fields, or none (<paramref name="planFields"/> empty).</summary>
    private async Task<RedisResult[]> CreateAsync(NewExecution execution, RedisKey[] exec, RedisKey idemKey, RedisKey planKey, RedisValue[] planFields, FusedLayout? layout, bool clustered, CreateOffer? offer)
    {
        // Exact-size arrays, filled once: a list grown and copied costs three times the memory (and, for large plans, the LOH).
        // ARGV: the index of the field count, the create's arguments, the field count, the fields.
        var keys = new RedisKey[exec.Length + (clustered ? 0 : 1) + (layout is null ? 0 : layout.Keys.Length + 2)];
        var itemCount = CreateArgCount(layout);
        var args = new RedisValue[1 + itemCount + 1 + planFields.Length];
        exec.CopyTo(keys, 0);
        if (!clustered)
        {
            keys[exec.Length] = execution.IdempotencyKey is not null ? idemKey : (RedisKey)string.Empty;
        }

        args[0] = 2 + itemCount;
        FillCreateArgs(execution, planKey, layout, offer, args, 1);
        args[1 + itemCount] = planFields.Length;
        planFields.CopyTo(args, 2 + itemCount);
        if (layout is not null)
        {
            layout.Keys.CopyTo(keys, exec.Length + 1);

            // One server: the script also adds the execution to the listing and active indexes (last two keys).
            keys[^2] = _keys.ExecutionIndex;
            keys[^1] = _keys.ActiveIndex;
        }

        var script = layout is not null ? RedisScripts.CreateFused : RedisScripts.Create;
        return (RedisResult[])(await script.EvaluateAsync(Db, keys, args).ConfigureAwait(false))!;
    }

    private async Task<RedisResult[]> CreateBatchedAsync(PendingCreate create)
    {
        var (result, error) = await _creates.SubmitAsync(create).ConfigureAwait(false);
        return result ?? throw error!;
    }

    /// <summary>
    /// One script for a batch of fused creates: per create its execution's keys, per distinct layout its queue keys (once),
    /// then the listing and active indexes. The script applies each create on its own and answers each. A call that fails as
    /// a whole (a dropped connection) fails each of its creates, and is not tried again one by one: those that landed would
    /// be turned down as existing.
    /// </summary>
    private async Task<(RedisResult[]?, Exception?)[]> CreateBatchAsync(PendingCreate[] batch)
    {
        try
        {
            var replies = await RunCreateBatchAsync(batch).ConfigureAwait(false);
            return Array.ConvertAll(replies, r => ((RedisResult[]?)r, (Exception?)null));
        }
        catch (Exception ex)
        {
            return Array.ConvertAll(batch, _ => ((RedisResult[]?)null, (Exception?)ex));
        }
    }

    private async Task<RedisResult[][]> RunCreateBatchAsync(PendingCreate[] batch)
    {
        var layouts = new Dictionary<FusedLayout, int>();
        var keys = new List<RedisKey>(batch.Length * 3 + 14);
        var argCount = 1;
        foreach (var create in batch)
        {
            argCount += 4 + CreateArgCount(create.Layout);
        }

        var all = new RedisValue[argCount];
        all[0] = batch.Length;
        var at = 1;
        foreach (var (execution, planKey, layout, offer) in batch)
        {
            if (!layouts.TryGetValue(layout, out var layoutKey))
            {
                // Lua indexes from 1: the script finds this layout's first queue key at KEYS[layoutKey + 1].
                layoutKey = keys.Count;
                layouts[layout] = layoutKey;
                keys.AddRange(layout.Keys);
            }

            var execKey = keys.Count + 1;
            keys.AddRange(_keys.Execution(execution.Id));
            // The create's arguments, then a plan field count of 0 (the plan is stored).
            var count = CreateArgCount(layout) + 1;
            all[at] = count;
            all[at + 1] = execKey;
            all[at + 2] = layoutKey;
            FillCreateArgs(execution, planKey, layout, offer, all, at + 3);
            all[at + 2 + count] = 0;
            at += 3 + count;
        }

        keys.Add(_keys.ExecutionIndex);
        keys.Add(_keys.ActiveIndex);
        var replies = (RedisResult[])(await RedisScripts.CreateMany.EvaluateAsync(Db, [.. keys], all).ConfigureAwait(false))!;
        var replyAt = 0;
        var results = new RedisResult[batch.Length][];
        for (var m = 0; m < batch.Length; m++)
        {
            results[m] = ScriptResults.Next(replies, ref replyAt);
        }

        return results;
    }

    /// <summary>Test seam: creates <paramref name="executions"/> (of stored plans) in one script, as the group commit does with creates that arrive together.</summary>
    internal Task<RedisResult[][]> CreateTogetherAsync(IReadOnlyList<NewExecution> executions) =>
        RunCreateBatchAsync([.. executions.Select(e => new PendingCreate(e, _keys.Plan(Fingerprint(e.Plan, null)), Layout(e.Plan), null))]);

    // The fused variant's arguments end with the block and the eager-start offer's queue and lease token (create.lua).
    private static int CreateArgCount(FusedLayout? layout) => layout is null ? 11 : 13 + layout.BlockLength;

    /// <summary>Writes a create's arguments (create.lua, without the plan's fields) at <paramref name="at"/>.</summary>
    private void FillCreateArgs(NewExecution execution, RedisKey planKey, FusedLayout? layout, CreateOffer? offer, RedisValue[] args, int at)
    {
        var plan = execution.Plan;
        var id = execution.Id.ToString("N");
        args[at] = plan.NodeCount;
        args[at + 1] = plan.Workflow;
        args[at + 2] = plan.Version;
        args[at + 3] = Raw(execution.Input);
        args[at + 4] = execution.TraceParent ?? string.Empty;
        args[at + 5] = execution.IdempotencyKey ?? string.Empty;
        args[at + 6] = plan.Definition.FailureMode == FailureMode.FailFast ? "0" : "1";
        args[at + 7] = (string?)planKey;
        args[at + 8] = ScriptResults.Ms(_options.Retention);
        args[at + 9] = _keys.Events(execution.Id).ToString();
        args[at + 10] = id;
        if (layout is not null)
        {
            layout.FillBlock(args, at + 11, execution.Id, execution.TraceParent, offer?.Worker);
            var k = at + 11 + layout.BlockLength;
            args[k] = offer?.Queue ?? string.Empty;
            args[k + 1] = offer is null ? RedisValue.EmptyString : offer.Token.ToString("N");
        }
    }

    /// <summary>The root a fused create started for the offering worker (create.lua), or null when it started none.</summary>
    private static ContinuedStart? ReadEagerStart(NewExecution execution, RedisResult[] result, CreateOffer offer)
    {
        if (ScriptResults.Code(result) != 0 || ReferenceEquals(result, ScriptResults.Accepted))
        {
            return null;
        }

        var extra = ScriptResults.Extra(result);
        if (extra.Length < 10)
        {
            return null;
        }

        // {input (not sent back: the caller has it), workflow, version, parents (none), node, attempt, queue, priority,
        // deliveries, lease expiry}
        var root = new Job(execution.Id, (string)extra[4]!, (int)extra[5], (string)extra[6]!, (int)extra[7], null, execution.TraceParent);
        var leased = new LeasedJob(root, offer.Token, (int)extra[8], DateTimeOffset.FromUnixTimeMilliseconds((long)extra[9]));
        return new ContinuedStart(leased, new StartNodeResult { Outcome = StartOutcome.Started, Plan = execution.Plan, WorkflowInput = execution.Input });
    }

    /// <summary>
    /// A create's reply; throws when the execution already exists (or the script failed). A fused create's reply lists no
    /// jobs (create.lua): they are its plan's roots at attempt 1, made here only when read.
    /// </summary>
    private static CreateExecutionResult ReadCreate(NewExecution execution, RedisResult[] result, bool fused) => ScriptResults.Code(result) switch
    {
        0 when fused => new CreateExecutionResult(execution.Id, true, new StoreTransition(
            new RootJobs(execution.Plan, execution.Id, execution.TraceParent), ScriptResults.Transition(result, execution.Id, execution.TraceParent).Events, JobsEnqueued: true)),
        0 => new CreateExecutionResult(execution.Id, true, ScriptResults.Transition(result, execution.Id, execution.TraceParent)),
        2 => throw new InvalidOperationException($"Execution {execution.Id} already exists."),
        _ => throw new RedisServerException($"Creating execution {execution.Id} failed in Redis: {(string?)result[1]}"),
    };

    public async ValueTask<StartNodeResult> TryStartNodeAsync(StartNodeRequest request, CancellationToken cancellationToken = default)
    {
        var job = request.Job.Job;
        var keys = _keys.Execution(job.ExecutionId);
        RedisValue[] args =
        [
            job.NodeId, job.Attempt, request.Job.LeaseToken.ToString("N"), request.WorkerId,
            ScriptResults.Ms(request.Lease), request.MaxWorkerLosses, "0",
            ErrorJson(new NodeError("WorkerLost", $"Workers were lost on this node {request.MaxWorkerLosses} times in a row.", ErrorClass.Permanent)),
        ];
        var result = (RedisResult[])(await RedisScripts.Start.EvaluateAsync(Db, keys, args).ConfigureAwait(false))!;
        if (ScriptResults.Code(result) == 4)
        {
            // The node is rate limited: take a slot of the handler's global sliding log, then start for real.
            var wait = (long)(await RedisScripts.Rate.EvaluateAsync(Db, [_keys.Rate((string)result[1]!)], [result[2].ToString(), result[3].ToString(), request.Job.LeaseToken.ToString("N")]).ConfigureAwait(false));
            if (wait > 0)
            {
                return new StartNodeResult { Outcome = StartOutcome.RateLimited, RetryAfter = TimeSpan.FromMilliseconds(wait) };
            }

            args[6] = "1";
            result = (RedisResult[])(await RedisScripts.Start.EvaluateAsync(Db, keys, args).ConfigureAwait(false))!;
        }

        var transition = ScriptResults.Transition(result, job.ExecutionId, job.TraceParent);
        switch (ScriptResults.Code(result))
        {
            case 0:
                return Started(ScriptResults.Extra(result), transition);
            case 2:
                return new StartNodeResult { Outcome = StartOutcome.Duplicate, RetryAfter = TimeSpan.FromMilliseconds((long)result[1]) };
            case 3:
                return new StartNodeResult { Outcome = StartOutcome.Paused, Transition = transition };
            case 5:
                await OnTransitionAsync(job.ExecutionId, result).ConfigureAwait(false);
                return new StartNodeResult { Outcome = StartOutcome.WorkerLost, Transition = transition };
            default:
                return new StartNodeResult { Outcome = StartOutcome.Stale };
        }
    }

    /// <summary>On one server the queue and the states share it: one script leases a batch of jobs and starts their nodes.</summary>
    public bool CanClaim => _fused.Value;

    public async ValueTask<IReadOnlyList<(LeasedJob Job, StartNodeResult? Start)>> ClaimAndStartAsync(string queue, int maxCount, ContinuationOffer worker, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var args = new RedisValue[5 + maxCount];
        args[0] = maxCount;
        args[1] = ScriptResults.Ms(worker.Lease);
        args[2] = InMemoryJobQueue.FairnessInterval;
        args[3] = _keys.Prefix;
        args[4] = worker.WorkerId;
        for (var k = 0; k < maxCount; k++)
        {
            args[5 + k] = LeaseTokens.Next().ToString("N");
        }

        // Past the script the jobs are this worker's: finish without the caller's token.
        var raw = (RedisResult[])(await RedisScripts.Claim.EvaluateAsync(Db, _queue!.KeysOf(queue).All, args).ConfigureAwait(false))!;
        var claimed = (RedisResult[])raw[0]!;
        var starts = (RedisResult[])raw[1]!;
        var result = new List<(LeasedJob, StartNodeResult?)>(claimed.Length / 5);
        var at = 0;
        RedisResult[]? info = null;
        // The start of a node without parents, and what it shares with the start before it: made once per run of them.
        StartNodeResult? same = null;
        for (var k = 0; k < claimed.Length / 5; k++)
        {
            var started = ScriptResults.Next(starts, ref at);
            var sameStart = ReferenceEquals(started, ScriptResults.SameStart);
            if (!sameStart && started.Length > 0)
            {
                same = null;
                // The workflow's input, name and version come with an execution's first start of the claim only.
                var extra = ScriptResults.Extra(started);
                if (string.IsNullOrEmpty((string?)extra[1]) && info is not null)
                {
                    Array.Copy(info, extra, 3);
                }

                info = extra;
            }

            if (await _queue.ReadLeasedAsync(queue, claimed, k * 5).ConfigureAwait(false) is not { } job)
            {
                continue;
            }

            StartNodeResult? start = null;
            if (sameStart)
            {
                // The claim sends one only after a full start of the same execution (claim.lua): info holds what they share.
                start = same ??= Started([info![0], info[1], info[2], RedisResult.Create(Array.Empty<RedisResult>())], StoreTransition.None);
            }
            else if (started.Length > 0)
            {
                start = Started(ScriptResults.Extra(started), ScriptResults.Transition(started, job.Job.ExecutionId, job.Job.TraceParent));
            }

            result.Add((job, start));
        }

        return result;
    }

    /// <summary>A start as the scripts describe it: workflow input, workflow name and version, succeeded parents' outputs (flat).</summary>
    private StartNodeResult Started(RedisResult[] extra, StoreTransition transition)
    {
        var plan = _registry.Get((string)extra[1]!, int.Parse((string)extra[2]!, CultureInfo.InvariantCulture));
        var flat = (RedisResult[])extra[3]!;
        var outputs = new Dictionary<string, JsonElement>(flat.Length / 2, StringComparer.Ordinal);
        for (var k = 0; k < flat.Length; k += 2)
        {
            if (ParseJson((string?)flat[k + 1]) is { } output)
            {
                outputs[(string)flat[k]!] = output;
            }
        }

        return new StartNodeResult { Outcome = StartOutcome.Started, Plan = plan, WorkflowInput = ParseInput((string?)extra[0]), ParentOutputs = outputs, Transition = transition };
    }

    public async ValueTask<IReadOnlyList<bool>> HeartbeatAsync(IReadOnlyList<LeasedJob> runs, TimeSpan lease, CancellationToken cancellationToken = default)
    {
        var owned = new bool[runs.Count];
        var byExecution = Enumerable.Range(0, runs.Count).GroupBy(i => runs[i].Job.ExecutionId);
        var calls = byExecution.Select(async group =>
        {
            var indices = group.ToArray();
            var args = new RedisValue[1 + indices.Length * 3];
            args[0] = ScriptResults.Ms(lease);
            for (var k = 0; k < indices.Length; k++)
            {
                var run = runs[indices[k]];
                args[1 + k * 3] = run.Job.NodeId;
                args[2 + k * 3] = run.Job.Attempt;
                args[3 + k * 3] = run.LeaseToken.ToString("N");
            }

            var result = (RedisResult[])(await RedisScripts.Heartbeat.EvaluateAsync(Db, _keys.Execution(group.Key), args).ConfigureAwait(false))!;
            for (var k = 0; k < indices.Length; k++)
            {
                owned[indices[k]] = (int)result[k] == 1;
            }
        });
        await Task.WhenAll(calls).ConfigureAwait(false);
        return owned;
    }

    public async ValueTask<CompleteNodeResult> CompleteNodeAsync(CompleteNodeRequest request, CancellationToken cancellationToken = default)
    {
        var job = request.Run.Job;
        if (_fused.Value && request.Plan is { } plan && Layout(plan) is { } layout && layout.Serves(job.Queue))
        {
            // One server: completions that arrive together go as one script (group commit), each also enqueueing and acking.
            var (completed, error) = await _completions.SubmitAsync(new PendingCompletion(request, layout)).ConfigureAwait(false);
            return completed ?? throw error!;
        }

        var args = new RedisValue[CompletionArgCount(request)];
        FillCompletionArgs(request, false, args, 0, out _);
        var result = (RedisResult[])(await RedisScripts.Complete.EvaluateAsync(Db, _keys.Execution(job.ExecutionId), args).ConfigureAwait(false))!;
        if (ScriptResults.Code(result) != 0)
        {
            return CompleteNodeResult.Rejected;
        }

        await OnTransitionAsync(job.ExecutionId, result).ConfigureAwait(false);
        return new CompleteNodeResult(true, ScriptResults.Transition(result, job.ExecutionId, request.TraceParent), false);
    }

    /// <summary>
    /// One script for a batch of fused completions: per distinct execution its keys, per distinct layout its queue keys
    /// (once), then the active index; what completions of one execution, layout and offer share goes once, as one block
    /// (fused.lua). The script applies each completion on its own and answers each: one that fails (a script error) fails
    /// alone, and the others, already applied, keep their answers.
    /// </summary>
    private async Task<(CompleteNodeResult? Result, Exception? Error)[]> CompleteBatchAsync(PendingCompletion[] batch)
    {
        var layouts = new Dictionary<FusedLayout, int>();
        var executions = new Dictionary<Guid, int>();
        var blocks = new Dictionary<(FusedLayout Layout, Guid Execution, string? TraceParent, string? Worker, TimeSpan Lease), int>();
        var keys = new List<RedisKey>(batch.Length * 3 + 10);
        var tokens = new Guid[batch.Length];
        var blockOf = new int[batch.Length];
        var firstOfBlock = new List<int>();
        var blockLength = 0;
        var argCount = 2;
        for (var m = 0; m < batch.Length; m++)
        {
            var (request, layout) = (batch[m].Request, batch[m].Layout);
            var block = (layout, request.Run.Job.ExecutionId, request.TraceParent, request.Continue?.WorkerId, request.Continue?.Lease ?? TimeSpan.Zero);
            if (!blocks.TryGetValue(block, out blockOf[m]))
            {
                // Lua indexes from 1, after the completion count and the blocks' length.
                blockOf[m] = blocks[block] = 3 + blockLength;
                blockLength += layout.BlockLength;
                firstOfBlock.Add(m);
            }

            argCount += 4 + CompletionArgCount(request);
        }

        // One array for the whole batch: the count, the blocks, then each completion's arguments written in place.
        var all = new RedisValue[argCount + blockLength];
        all[0] = batch.Length;
        all[1] = blockLength;
        foreach (var m in firstOfBlock)
        {
            var (request, layout) = (batch[m].Request, batch[m].Layout);
            layout.FillBlock(all, blockOf[m] - 1, request.Run.Job.ExecutionId, request.TraceParent, request.Continue);
        }

        var at = 2 + blockLength;
        for (var m = 0; m < batch.Length; m++)
        {
            var (request, layout) = (batch[m].Request, batch[m].Layout);
            if (!layouts.TryGetValue(layout, out var layoutKey))
            {
                // Lua indexes from 1: the script finds this layout's first queue key at KEYS[layoutKey + 1].
                layoutKey = keys.Count;
                layouts[layout] = layoutKey;
                keys.AddRange(layout.Keys);
            }

            // An execution's keys go once, however many of its completions the batch holds.
            if (!executions.TryGetValue(request.Run.Job.ExecutionId, out var execKey))
            {
                execKey = keys.Count + 1;
                executions[request.Run.Job.ExecutionId] = execKey;
                keys.AddRange(_keys.Execution(request.Run.Job.ExecutionId));
            }

            var count = CompletionArgCount(request);
            all[at] = count;
            all[at + 1] = execKey;
            all[at + 2] = layoutKey;
            all[at + 3] = blockOf[m];
            FillCompletionArgs(request, true, all, at + 4, out tokens[m]);
            at += 4 + count;
        }

        keys.Add(_keys.ActiveIndex);
        var replies = (RedisResult[])(await RedisScripts.CompleteMany.EvaluateAsync(Db, [.. keys], all).ConfigureAwait(false))!;
        var results = new (CompleteNodeResult?, Exception?)[batch.Length];
        var replyAt = 0;
        for (var m = 0; m < batch.Length; m++)
        {
            var reply = ScriptResults.Next(replies, ref replyAt);
            results[m] = ScriptResults.Code(reply) == -1
                ? (null, new RedisServerException($"Completing {batch[m].Request.Run.Job.NodeId} failed in Redis: {(string?)reply[1]}"))
                : (ReadFusedCompletion(batch[m].Request, reply, tokens[m]), null);
        }

        return results;
    }

    /// <summary>Test seam: completes <paramref name="requests"/> in one script, as the group commit does with completions that arrive together.</summary>
    internal Task<(CompleteNodeResult? Result, Exception? Error)[]> CompleteTogetherAsync(IReadOnlyList<CompleteNodeRequest> requests) =>
        CompleteBatchAsync([.. requests.Select(r => new PendingCompletion(r, Layout(r.Plan!)))]);

    /// <summary>How many arguments <see cref="FillCompletionArgs"/> writes: a completion's own (complete.lua), the failure's five only when it did not succeed.</summary>
    private static int CompletionArgCount(CompleteNodeRequest request) =>
        11 + request.PriorAttempts.Count + (request.Outcome == AttemptOutcome.Succeeded ? 0 : 5);

    /// <summary>
    /// Writes the completion's own arguments (complete.lua) at <paramref name="at"/>; fused: with the eager-dispatch offer's
    /// fresh lease token, when the worker made one.
    /// </summary>
    private static void FillCompletionArgs(CompleteNodeRequest request, bool fused, RedisValue[] args, int at, out Guid token)
    {
        var job = request.Run.Job;
        var priors = request.PriorAttempts;
        token = Guid.Empty;
        if (fused && request.Continue is not null)
        {
            // Eager dispatch: the script may start a ready child for this worker under this fresh lease token.
            token = LeaseTokens.Next();
        }

        args[at] = job.NodeId;
        args[at + 1] = job.Attempt;
        args[at + 2] = request.Run.LeaseToken.ToString("N");
        args[at + 3] = request.Outcome switch { AttemptOutcome.Succeeded => "0", AttemptOutcome.Failed => "1", _ => "2" };
        args[at + 4] = request.FinalAttempt;
        args[at + 5] = ScriptResults.Ms(request.StartedAt);
        args[at + 6] = request.Output is { } output ? Raw(output) : "null";
        args[at + 7] = request.TakenEdges is { } taken ? new string([.. taken.Select(t => t ? '1' : '0')]) : string.Empty;
        args[at + 8] = job.Queue;
        args[at + 9] = token == Guid.Empty ? RedisValue.EmptyString : token.ToString("N");
        args[at + 10] = priors.Count;
        for (var k = 0; k < priors.Count; k++)
        {
            args[at + 11 + k] = HistoryJson(priors[k]);
        }

        if (request.Outcome != AttemptOutcome.Succeeded)
        {
            var f = at + 11 + priors.Count;
            args[f] = request.Error is { } error ? ErrorJson(error) : string.Empty;
            args[f + 1] = request.Error?.Type ?? string.Empty;
            args[f + 2] = request.Error?.Message ?? string.Empty;
            args[f + 3] = request.TimedOut ? "1" : "0";
            args[f + 4] = request.RetryAt is { } retryAt ? ScriptResults.Ms(retryAt) : string.Empty;
        }
    }

    /// <summary>A fused completion's reply: its transition (jobs already enqueued) and the child it started for this worker, if any.</summary>
    private CompleteNodeResult ReadFusedCompletion(CompleteNodeRequest request, RedisResult[] result, Guid token)
    {
        if (ScriptResults.Code(result) != 0)
        {
            return CompleteNodeResult.Rejected;
        }

        if (ReferenceEquals(result, ScriptResults.Accepted))
        {
            return AcceptedFused;
        }

        var job = request.Run.Job;
        var transition = Fuse(ScriptResults.Transition(result, job.ExecutionId, request.TraceParent), true);
        var extra = ScriptResults.Extra(result);
        ContinuedStart? next = null;
        if (extra.Length >= 10)
        {
            // {input, workflow, version, parents, node, attempt, queue, priority, deliveries, lease expiry}
            var child = new Job(job.ExecutionId, (string)extra[4]!, (int)extra[5], (string)extra[6]!, (int)extra[7], null, request.TraceParent);
            var leased = new LeasedJob(child, token, (int)extra[8], DateTimeOffset.FromUnixTimeMilliseconds((long)extra[9]));
            next = new ContinuedStart(leased, Started(extra, StoreTransition.None));
        }

        return new CompleteNodeResult(true, transition, true) { Next = next };
    }

    /// <summary>A create waiting for the next batch, with its plan's key and fused layout.</summary>
    private sealed record PendingCreate(NewExecution Execution, RedisKey PlanKey, FusedLayout Layout, CreateOffer? Offer);

    /// <summary>A worker's offer to run a root of the create on <paramref name="Queue"/> under the fresh lease token <paramref name="Token"/>.</summary>
    private sealed record CreateOffer(string Queue, ContinuationOffer Worker, Guid Token);

    /// <summary>A completion waiting for the next batch, with its plan's fused layout.</summary>
    private sealed record PendingCompletion(CompleteNodeRequest Request, FusedLayout Layout);

    public async ValueTask<bool> ReleaseNodeAsync(LeasedJob run, CancellationToken cancellationToken = default) =>
        (int)await RedisScripts.Release.EvaluateAsync(Db, _keys.Execution(run.Job.ExecutionId), [run.Job.NodeId, run.Job.Attempt, run.LeaseToken.ToString("N")]).ConfigureAwait(false) == 1;

    public ValueTask<StoreTransition> PauseAsync(Guid executionId, CancellationToken cancellationToken = default) =>
        ControlAsync(executionId, ["pause"]);

    public async ValueTask<StoreTransition> ResumeAsync(Guid executionId, ReviewDecision? decision, CancellationToken cancellationToken = default)
    {
        var reason = decision?.Reason ?? "Rejected by review.";
        for (var round = 0; ; round++)
        {
            var args = new List<RedisValue> { "resume", decision is null ? "0" : "1", decision?.Approved == true ? "1" : "0", decision?.Output is { } o ? Raw(o) : "null" };
            args.Add(decision is { Approved: false } ? ErrorJson(new NodeError("ReviewRejected", reason, ErrorClass.Permanent)) : string.Empty);
            args.Add(reason);
            if (decision is { Approved: true })
            {
                // Conditions are C# (or JSON paths evaluated in C#): decide the branches of every node seen awaiting
                // review here; the script applies them atomically, or asks again if another node joined the review.
                var snapshot = await GetExecutionAsync(executionId, cancellationToken).ConfigureAwait(false) ?? throw new ExecutionNotFoundException(executionId);
                var plan = _registry.Get(snapshot.Workflow, snapshot.Version);
                for (var i = 0; i < snapshot.Nodes.Count; i++)
                {
                    if (snapshot.Nodes[i].Status == NodeStatus.AwaitingReview)
                    {
                        args.Add(i);
                        args.Add(plan.EvaluateEdges(i, decision.Output) is { } taken ? new string([.. taken.Select(t => t ? '1' : '0')]) : string.Empty);
                    }
                }
            }

            var result = (RedisResult[])(await RedisScripts.Control.EvaluateAsync(Db, _keys.Execution(executionId), [.. args]).ConfigureAwait(false))!;
            if (ScriptResults.Code(result) != 4 || round >= 10)
            {
                return await FinishControlAsync(executionId, result).ConfigureAwait(false);
            }
        }
    }

    public ValueTask<StoreTransition> CancelAsync(Guid executionId, CancellationToken cancellationToken = default) =>
        ControlAsync(executionId, ["cancel", _keys.Cancel.ToString(), executionId.ToString("N")]);

    public ValueTask<StoreTransition> RetryAsync(Guid executionId, string? nodeId, CancellationToken cancellationToken = default) =>
        ControlAsync(executionId, ["retry", nodeId ?? string.Empty]);

    public async ValueTask<ExecutionStatus?> GetStatusAsync(Guid executionId, CancellationToken cancellationToken) =>
        await Db.HashGetAsync(_keys.Execution(executionId)[0], "st").ConfigureAwait(false) is { IsNull: false } status ? (ExecutionStatus)(int)status : null;

    public async ValueTask<ExecutionSnapshot?> GetExecutionAsync(Guid executionId, CancellationToken cancellationToken = default)
    {
        // One script reads the execution hash and packs the nodes' dynamic fields into one string: HGETALL of the node
        // hash would return a value per field (and, on a cluster, every static plan field) and, for large executions, fill
        // the large object heap.
        // Node ids and handlers come from the registered plan; a process without it (a dashboard host) reads them too.
        RedisKey[] keys = [.. _keys.Execution(executionId).AsSpan(0, 2)];
        var reply = await RedisScripts.Snapshot.EvaluateAsync(Db, keys, [0]).ConfigureAwait(false);
        if (reply.IsNull)
        {
            return null;
        }

        var (exec, packed) = SnapshotParts(reply);
        var count = (int)exec["n"];
        var plan = _registry.Find(exec["wf"]!, (int)exec["ver"]);
        if (plan is null || plan.NodeCount != count || !StoredAs(plan, exec.GetValueOrDefault("p"), keys[1]))
        {
            reply = await RedisScripts.Snapshot.EvaluateAsync(Db, keys, [1]).ConfigureAwait(false);
            if (reply.IsNull)
            {
                return null;
            }

            (exec, packed) = SnapshotParts(reply);
            count = (int)exec["n"];
            plan = null;
        }

        var reader = new PackedReader(packed);
        var done = 0;
        var snapshots = new NodeSnapshot[count];
        string? lastWorker = null;
        ReadOnlySpan<byte> lastWorkerBytes = default;
        for (var i = 0; i < count; i++)
        {
            reader.Next(out var record);
            var status = NodeRecord.Parse(record, out var attempt, out var startedAt, out var endedAt, out var worker);
            if (!worker.IsEmpty && (lastWorker is null || !lastWorkerBytes.SequenceEqual(worker)))
            {
                // Runs of nodes share a worker: one string for each run.
                lastWorker = Encoding.UTF8.GetString(worker);
                lastWorkerBytes = worker;
            }

            reader.Next(out var output);
            reader.Next(out var error);
            string id, handler;
            if (plan is null)
            {
                id = reader.String();
                handler = reader.String();
            }
            else
            {
                (id, handler) = (plan.Nodes[i].Id, plan.Nodes[i].Handler);
            }

            if (ExecutionState.IsTerminal(status))
            {
                done++;
            }

            snapshots[i] = new NodeSnapshot
            {
                Id = id,
                Handler = handler,
                Status = status,
                Attempt = attempt,
                StartedAt = startedAt,
                EndedAt = endedAt,
                WorkerId = worker.IsEmpty ? null : lastWorker,
                Output = status == NodeStatus.Succeeded ? ParseJson(output) : null,
                Error = ParseError(error),
            };
        }

        var execStatus = (ExecutionStatus)(int)exec["st"];
        return new ExecutionSnapshot
        {
            Id = executionId,
            Workflow = exec["wf"]!,
            Version = (int)exec["ver"],
            Status = execStatus,
            CreatedAt = Time(exec["ca"])!.Value,
            EndedAt = Time(exec.GetValueOrDefault("ea")),
            Input = ParseInput(exec.GetValueOrDefault("in")),
            Output = execStatus == ExecutionStatus.Succeeded ? ParseJson(exec.GetValueOrDefault("out")) : null,
            Error = ParseError(exec.GetValueOrDefault("err")),
            Progress = new ExecutionProgress(done, count),
            Nodes = snapshots,
        };
    }

    /// <summary>Whether the registered <paramref name="plan"/> is the one an execution names (by its plan key, or its node hash on a cluster).</summary>
    private bool StoredAs(ExecutionPlan plan, RedisValue planKey, RedisKey nodeHash) =>
        planKey == (string?)nodeHash || planKey == (string?)_keys.Plan(Fingerprint(plan, null));

    private static (Dictionary<string, RedisValue> Exec, byte[] Packed) SnapshotParts(RedisResult reply)
    {
        var parts = (RedisResult[])reply!;
        var flat = (RedisValue[])parts[0]!;
        var exec = new Dictionary<string, RedisValue>(flat.Length / 2, StringComparer.Ordinal);
        for (var f = 0; f + 1 < flat.Length; f += 2)
        {
            exec[(string)flat[f]!] = flat[f + 1];
        }

        return (exec, (byte[])parts[1]! ?? []);
    }

    public async ValueTask<IReadOnlyList<NodeRunRecord>?> GetHistoryAsync(Guid executionId, CancellationToken cancellationToken = default)
    {
        var keys = _keys.Execution(executionId);
        var batch = Db.CreateBatch();
        var exists = batch.KeyExistsAsync(keys[0]);
        var entries = batch.ListRangeAsync(keys[2]);
        batch.Execute();
        if (!await exists.ConfigureAwait(false))
        {
            return null;
        }

        return [.. (await entries.ConfigureAwait(false)).Select(e => ParseHistory(executionId, e!))];
    }

    public async ValueTask<IReadOnlyList<ExecutionSummary>> ListExecutionsAsync(ExecutionQuery query, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        var ids = await Db.SortedSetRangeByRankAsync(_keys.ExecutionIndex, 0, 9_999, Order.Descending).ConfigureAwait(false);
        var batch = Db.CreateBatch();
        var reads = ids.Select(id => (Id: Guid.ParseExact(id.ToString(), "N"), Task: batch.HashGetAsync(_keys.Execution(Guid.ParseExact(id.ToString(), "N"))[0], ["st", "wf", "ca", "rv"]))).ToList();
        batch.Execute();
        var result = new List<ExecutionSummary>();
        foreach (var (id, task) in reads)
        {
            var values = await task.ConfigureAwait(false);
            if (values[0].IsNull)
            {
                continue;
            }

            var status = (ExecutionStatus)(int)values[0];
            var reviewing = (int)values[3] > 0;
            if ((query.Status is null || status == query.Status) && (query.Workflow is null || query.Workflow == values[1]) && (!query.AwaitingReview || reviewing))
            {
                IReadOnlyList<string> awaiting = [];
                if (reviewing)
                {
                    var snapshot = await GetExecutionAsync(id, cancellationToken).ConfigureAwait(false);
                    awaiting = snapshot is null ? [] : [.. snapshot.Nodes.Where(n => n.Status == NodeStatus.AwaitingReview).Select(n => n.Id)];
                }

                result.Add(new ExecutionSummary(id, values[1]!, status, Time(values[2])!.Value, awaiting));
                if (result.Count >= query.Limit)
                {
                    break;
                }
            }
        }

        return result;
    }

    public async ValueTask<IReadOnlyList<HandlerStats>> GetHandlerStatsAsync(DateTimeOffset since, CancellationToken cancellationToken = default)
    {
        var ids = await Db.SortedSetRangeByRankAsync(_keys.ExecutionIndex, 0, 9_999, Order.Descending).ConfigureAwait(false);
        var batch = Db.CreateBatch();
        var reads = ids.Select(id => (Id: Guid.ParseExact(id.ToString(), "N"), Task: batch.ListRangeAsync(_keys.Execution(Guid.ParseExact(id.ToString(), "N"))[2]))).ToList();
        batch.Execute();
        var records = new List<NodeRunRecord>();
        foreach (var (id, task) in reads)
        {
            records.AddRange((await task.ConfigureAwait(false)).Select(e => ParseHistory(id, e!)).Where(r => r.StartedAt >= since));
        }

        return HandlerStatsCalculator.Compute(records);
    }

    /// <summary>Test seam: runs between the sweep's reading an execution as ended and its removal from the active index.</summary>
    internal Func<Guid, Task>? BeforeIndexRemoval { get; set; }

    public async ValueTask<IReadOnlyList<Job>> FindStrandedAsync(DateTimeOffset queuedBefore, int max, CancellationToken cancellationToken = default)
    {
        var now = await GetTimeAsync(cancellationToken).ConfigureAwait(false);
        var strandedAfter = ScriptResults.Ms(now - queuedBefore);
        var jobs = new List<Job>();
        foreach (var member in await Db.SetMembersAsync(_keys.ActiveIndex).ConfigureAwait(false))
        {
            var id = Guid.ParseExact(member.ToString(), "N");
            var result = (RedisResult[])(await RedisScripts.Control.EvaluateAsync(Db, _keys.Execution(id), ["stranded", strandedAfter]).ConfigureAwait(false))!;
            if (!ScriptResults.IsFull(result) || ScriptResults.Status(result) is not (ExecutionStatus.Running or ExecutionStatus.Paused))
            {
                if (BeforeIndexRemoval is { } hook)
                {
                    await hook(id).ConfigureAwait(false);
                }

                await Db.SetRemoveAsync(_keys.ActiveIndex, member).ConfigureAwait(false);

                // A retry or resume between the read above and the removal makes it run again, and the re-add it sends on its
                // own may land before the removal: read the status once more, and put it back if it runs.
                if (ScriptResults.IsFull(result) && await GetStatusAsync(id, cancellationToken).ConfigureAwait(false) is ExecutionStatus.Running or ExecutionStatus.Paused)
                {
                    await Db.SetAddAsync(_keys.ActiveIndex, member).ConfigureAwait(false);
                }

                continue;
            }

            jobs.AddRange(ScriptResults.Transition(result, id, null).Jobs);
            if (jobs.Count >= max)
            {
                break;
            }
        }

        return jobs;
    }

    public async ValueTask<int> PurgeFinishedAsync(DateTimeOffset endedBefore, CancellationToken cancellationToken = default)
    {
        // Finished executions expire by key TTL (set by the scripts); this only drops index entries that point at nothing.
        var ids = await Db.SortedSetRangeByScoreAsync(_keys.ExecutionIndex, double.NegativeInfinity, endedBefore.ToUnixTimeMilliseconds()).ConfigureAwait(false);
        var batch = Db.CreateBatch();
        var checks = ids.Select(id => (Id: id, Task: batch.KeyExistsAsync(_keys.Execution(Guid.ParseExact(id.ToString(), "N"))[0]))).ToList();
        batch.Execute();
        var gone = new List<RedisValue>();
        foreach (var (id, task) in checks)
        {
            if (!await task.ConfigureAwait(false))
            {
                gone.Add(id);
            }
        }

        if (gone.Count > 0)
        {
            await Db.SortedSetRemoveAsync(_keys.ExecutionIndex, [.. gone]).ConfigureAwait(false);
        }

        return gone.Count;
    }

    public async ValueTask<DateTimeOffset> GetTimeAsync(CancellationToken cancellationToken = default)
    {
        var time = (RedisResult[])(await Db.ExecuteAsync("TIME").ConfigureAwait(false))!;
        return DateTimeOffset.FromUnixTimeMilliseconds(long.Parse((string)time[0]!, CultureInfo.InvariantCulture) * 1000 + long.Parse((string)time[1]!, CultureInfo.InvariantCulture) / 1000);
    }

    private FusedLayout Layout(ExecutionPlan plan) => _layouts.GetValue(plan, p =>
    {
        string[] queues = [.. p.Nodes.Select(n => n.Queue).Distinct(StringComparer.Ordinal)];
        var keys = new RedisKey[queues.Length * 6];
        var args = new RedisValue[queues.Length + 2];
        args[0] = queues.Length;
        for (var k = 0; k < queues.Length; k++)
        {
            var q = _queue!.KeysOf(queues[k]);
            q.All.CopyTo(keys, k * 6);
            args[1 + k] = queues[k];
        }

        args[^1] = _keys.Prefix + ":wake:";
        return new FusedLayout(queues, keys, args);
    });

    /// <summary>
    /// The keys and arguments of the fused enqueue (and ack) for one plan: per queue its six keys and its name, then the wake
    /// channel prefix (fixed). With what a call adds (<see cref="FillBlock"/>) they make the block its transitions share (fused.lua).
    /// </summary>
    private sealed class FusedLayout(string[] queues, RedisKey[] keys, RedisValue[] args)
    {
        /// <summary>What a call adds to <see cref="Args"/>: execution id, traceparent, worker id and lease ms.</summary>
        public const int CallArgs = 4;

        public RedisKey[] Keys { get; } = keys;

        public RedisValue[] Args { get; } = args;

        public int BlockLength => Args.Length + CallArgs;

        public bool Serves(string queue) => Array.IndexOf(queues, queue) >= 0;

        /// <summary>Writes the shared block at <paramref name="argAt"/> (the caller places <see cref="Keys"/>).</summary>
        public void FillBlock(RedisValue[] args, int argAt, Guid execution, string? traceParent, ContinuationOffer? offer)
        {
            Args.CopyTo(args, argAt);
            var k = argAt + Args.Length;
            args[k++] = execution.ToString("N");
            args[k++] = traceParent ?? string.Empty;
            args[k++] = offer?.WorkerId ?? string.Empty;
            args[k++] = offer is null ? RedisValue.EmptyString : ScriptResults.Ms(offer.Lease);
        }
    }

    private static StoreTransition Fuse(StoreTransition transition, bool fused) =>
        fused && transition.Jobs.Count > 0 ? transition with { JobsEnqueued = true } : transition;

    private bool IsCluster() => _redis.GetEndPoints().Length > 1 && _redis.GetServer(_redis.GetEndPoints()[0]).ServerType == ServerType.Cluster;

    private async ValueTask<StoreTransition> ControlAsync(Guid executionId, RedisValue[] args) =>
        await FinishControlAsync(executionId, (RedisResult[])(await RedisScripts.Control.EvaluateAsync(Db, _keys.Execution(executionId), args).ConfigureAwait(false))!).ConfigureAwait(false);

    private async ValueTask<StoreTransition> FinishControlAsync(Guid executionId, RedisResult[] result)
    {
        switch (ScriptResults.Code(result))
        {
            case 1:
                throw new ExecutionNotFoundException(executionId);
            case 2:
                throw new InvalidExecutionStateException(executionId, $"Execution {executionId}: {(string?)result[1]}.");
            case 3:
                var ids = ((RedisResult[])result[1]!).Select(r => (string)r!);
                throw new InvalidExecutionStateException(executionId, $"Execution {executionId} awaits review of {string.Join(", ", ids)}; resume it with a ReviewDecision.");
            case 4:
                throw new InvalidExecutionStateException(executionId, $"Execution {executionId}: nodes kept joining the review while it was being resumed; try again.");
        }

        await OnTransitionAsync(executionId, result).ConfigureAwait(false);
        return ScriptResults.Transition(result, executionId, null);
    }

    private async Task OnTransitionAsync(Guid executionId, RedisResult[] result)
    {
        if (ScriptResults.Status(result) is ExecutionStatus.Succeeded or ExecutionStatus.Failed or ExecutionStatus.Canceled)
        {
            await Db.SetRemoveAsync(_keys.ActiveIndex, executionId.ToString("N"), CommandFlags.FireAndForget).ConfigureAwait(false);
        }
        else if (ScriptResults.Status(result) is ExecutionStatus.Running && result.Length >= 8)
        {
            await Db.SetAddAsync(_keys.ActiveIndex, executionId.ToString("N"), CommandFlags.FireAndForget).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The fingerprint of the plan's fields (<see cref="BuildPlanFields"/>), from <paramref name="fields"/> when the caller has
    /// made them: it names the plan's hash on one server, so every process that registers the same plan shares one hash and a
    /// changed plan gets its own.
    /// </summary>
    private static string Fingerprint(ExecutionPlan plan, RedisValue[]? fields) =>
        PlanFingerprints.TryGetValue(plan, out var known) ? known : PlanFingerprints.GetValue(plan, p => Hash(fields ?? BuildPlanFields(p)));

    private RedisValue[] PlanFieldsOf(ExecutionPlan plan, bool clustered) =>
        clustered ? _clusterFields.GetValue(plan, BuildPlanFields) : BuildPlanFields(plan);

    private static string Hash(RedisValue[] fields)
    {
        var hash = new XxHash128();
        Span<byte> separator = [0];
        foreach (var field in fields)
        {
            hash.Append((byte[])field!);
            hash.Append(separator);
        }

        return Convert.ToHexStringLower(hash.GetCurrentHash());
    }

    /// <summary>The plan as Redis holds it: its field/value pairs (prelude.lua names the fields).</summary>
    private static RedisValue[] BuildPlanFields(ExecutionPlan plan)
    {
        var graph = plan.Graph;
        var fields = new List<RedisValue>(plan.NodeCount * 22 + 4);
        void Add(string name, int i, RedisValue value)
        {
            fields.Add(name + i.ToString(CultureInfo.InvariantCulture));
            fields.Add(value);
        }

        for (var i = 0; i < plan.NodeCount; i++)
        {
            var node = plan.Nodes[i];
            Add("id", i, node.Id);
            Add("h", i, node.Handler);
            Add("q", i, node.Queue);
            Add("pr", i, node.Priority);
            Add("r", i, (int)node.TriggerRule);
            Add("pc", i, graph.ParentCount(i));
            Add("ps", i, graph.ParentStart[i]);
            Add("pa", i, string.Join(',', graph.ParentsOf(i).ToArray()));
            var children = new StringBuilder();
            for (var s = graph.ChildStart[i]; s < graph.ChildStart[i + 1]; s++)
            {
                var child = graph.Children[s];
                children.Append(children.Length == 0 ? string.Empty : ",").Append(child).Append(':').Append(graph.ChildSlotToParentSlot[s]).Append(':').Append(graph.ParentCount(child));
            }

            Add("ch", i, children.ToString());
            // Every node field is written, an empty one as '': the functions keep plan fields from call to call, and an absent
            // field then means a lost plan hash, never "no rate limit".
            Add("rl", i, node.RateLimit is { } rate ? $"{rate.Limit}:{(long)rate.Period.TotalMilliseconds}" : string.Empty);

            fields.Add("n2i:" + node.Id);
            fields.Add(i);
        }

        fields.Add("roots");
        fields.Add(string.Join(',', plan.Roots));
        fields.Add("leaves");
        fields.Add(string.Join(',', plan.Leaves));

        return [.. fields];
    }

    private static string Raw(JsonElement element) =>
        element.ValueKind == JsonValueKind.Undefined ? "null" : Encoding.UTF8.GetString(JsonMarshal.GetRawUtf8Value(element));

    // Outputs stored as JSON null read back as no output, as the in-memory store keeps them.
    private static JsonElement? ParseJson(ReadOnlySpan<byte> value)
    {
        if (value.IsEmpty || value.SequenceEqual("null"u8))
        {
            return null;
        }

        var reader = new Utf8JsonReader(value);
        return JsonElement.ParseValue(ref reader);
    }

    private static NodeError? ParseError(ReadOnlySpan<byte> value)
    {
        if (value.IsEmpty)
        {
            return null;
        }

        var dto = JsonSerializer.Deserialize<ErrorDto>(value)!;
        return new NodeError(dto.T, dto.M, (ErrorClass)dto.C);
    }

    private static JsonElement? ParseJson(RedisValue value) => ParseJson(((ReadOnlyMemory<byte>)value).Span);

    private static JsonElement ParseInput(RedisValue value) =>
        JsonDocument.Parse(value.IsNullOrEmpty ? "null" : (string)value!).RootElement;

    private static DateTimeOffset? Time(RedisValue value) =>
        value.IsNullOrEmpty || (long)value == 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds((long)value);

    private static string ErrorJson(NodeError error) =>
        JsonSerializer.Serialize(new ErrorDto(error.Type, error.Message, (int)error.Class));

    private static NodeError? ParseError(RedisValue value) => ParseError(((ReadOnlyMemory<byte>)value).Span);

    private static string HistoryJson(NodeRunRecord r) => JsonSerializer.Serialize(new HistoryDto(
        r.NodeId, r.Handler, r.Attempt, (int)r.Status, r.StartedAt.ToUnixTimeMilliseconds(), r.EndedAt.ToUnixTimeMilliseconds(), r.WorkerId ?? string.Empty, r.ErrorType ?? string.Empty, r.ErrorMessage ?? string.Empty));

    private static NodeRunRecord ParseHistory(Guid executionId, string json)
    {
        var d = JsonSerializer.Deserialize<HistoryDto>(json)!;
        return new NodeRunRecord
        {
            ExecutionId = executionId,
            NodeId = d.N,
            Handler = d.H,
            Attempt = d.A,
            Status = (NodeRunStatus)d.S,
            StartedAt = DateTimeOffset.FromUnixTimeMilliseconds(d.Sa),
            EndedAt = DateTimeOffset.FromUnixTimeMilliseconds(d.Ea),
            WorkerId = string.IsNullOrEmpty(d.W) ? null : d.W,
            ErrorType = string.IsNullOrEmpty(d.Et) ? null : d.Et,
            ErrorMessage = string.IsNullOrEmpty(d.Em) ? null : d.Em,
        };
    }

    private sealed record ErrorDto(
        [property: System.Text.Json.Serialization.JsonPropertyName("t")] string T,
        [property: System.Text.Json.Serialization.JsonPropertyName("m")] string M,
        [property: System.Text.Json.Serialization.JsonPropertyName("c")] int C);

    private sealed record HistoryDto(
        [property: System.Text.Json.Serialization.JsonPropertyName("n")] string N,
        [property: System.Text.Json.Serialization.JsonPropertyName("h")] string H,
        [property: System.Text.Json.Serialization.JsonPropertyName("a")] int A,
        [property: System.Text.Json.Serialization.JsonPropertyName("s")] int S,
        [property: System.Text.Json.Serialization.JsonPropertyName("sa")] long Sa,
        [property: System.Text.Json.Serialization.JsonPropertyName("ea")] long Ea,
        [property: System.Text.Json.Serialization.JsonPropertyName("w")] string W,
        [property: System.Text.Json.Serialization.JsonPropertyName("et")] string Et,
        [property: System.Text.Json.Serialization.JsonPropertyName("em")] string Em);
}

/// <summary>
/// A node's record as the scripts keep it in the node hash (prelude.lua):
/// <c>status|attempt|losses|readyAt|token|startedAt|leaseEnds|endedAt|worker</c>, times in Unix milliseconds (endedAt
/// may be <c>+</c> and the milliseconds after startedAt), an empty part unset, the worker last. A node never written has
/// none: Pending, attempt 0.
/// </summary>
internal static class NodeRecord
{
    private const int Parts = 9;

    /// <summary>What a snapshot shows of a record: its status, and its attempt, times and worker (empty when none).</summary>
    /// <remarks>A record that does not parse reads as none.</remarks>
    public static NodeStatus Parse(ReadOnlySpan<byte> record, out int attempt, out DateTimeOffset? startedAt, out DateTimeOffset? endedAt, out ReadOnlySpan<byte> worker)
    {
        attempt = 0;
        startedAt = endedAt = null;
        worker = default;
        Span<Range> parts = stackalloc Range[Parts - 1];
        var at = 0;
        // The first eight parts end at a '|'; the worker is the rest, its own '|' and all.
        for (var p = 0; p < Parts - 1; p++)
        {
            var end = record[at..].IndexOf((byte)'|');
            if (end < 0)
            {
                return NodeStatus.Pending;
            }

            parts[p] = at..(at + end);
            at += end + 1;
        }

        if (record[parts[0]] is not [>= (byte)'0' and <= (byte)'9' and var digit])
        {
            return NodeStatus.Pending;
        }

        attempt = (int)Number(record[parts[1]]);
        startedAt = Time(record[parts[5]]);
        var ended = record[parts[7]];
        // "+<ms>": the end as milliseconds after the start.
        endedAt = ended is [(byte)'+', .. var after] ? startedAt?.AddMilliseconds(Number(after)) : Time(ended);
        worker = record[at..];
        return (NodeStatus)(digit - '0');
    }

    private static long Number(ReadOnlySpan<byte> text) =>
        System.Buffers.Text.Utf8Parser.TryParse(text, out long value, out var consumed) && consumed == text.Length ? value : 0;

    private static DateTimeOffset? Time(ReadOnlySpan<byte> text) => Number(text) is var ms && ms != 0 ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;
}

/// <summary>Reads the values <c>snapshot.lua</c> packs: <c>&lt;byte length&gt;:&lt;bytes&gt;</c>, or <c>-</c> for a missing one.</summary>
internal ref struct PackedReader(ReadOnlySpan<byte> data)
{
    private ReadOnlySpan<byte> _rest = data;

    /// <summary>The next value (empty when missing); false when it is missing.</summary>
    public bool Next(out ReadOnlySpan<byte> value)
    {
        if (_rest.IsEmpty)
        {
            throw new InvalidDataException("The packed snapshot ended early.");
        }

        if (_rest[0] == (byte)'-')
        {
            _rest = _rest[1..];
            value = default;
            return false;
        }

        var colon = _rest.IndexOf((byte)':');
        if (colon < 1 || !System.Buffers.Text.Utf8Parser.TryParse(_rest[..colon], out int length, out var consumed) || consumed != colon || length > _rest.Length - colon - 1)
        {
            throw new InvalidDataException("The packed snapshot is malformed.");
        }

        value = _rest.Slice(colon + 1, length);
        _rest = _rest[(colon + 1 + length)..];
        return true;
    }

    /// <summary>The next value as a string; empty when missing.</summary>
    public string String() => Next(out var value) ? Encoding.UTF8.GetString(value) : string.Empty;
}
