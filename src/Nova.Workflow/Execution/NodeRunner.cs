using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Nova.Workflow.Diagnostics;
using Nova.Workflow.Handlers;
using Nova.Workflow.Retry;
using Nova.Workflow.Storage;
using Polly;
using Polly.Retry;

namespace Nova.Workflow.Execution;

/// <summary>
/// Runs one leased job: asks the store to start it, runs the handler inside its resilience
/// pipeline and time limits, and commits the outcome with the store's atomic completion step.
/// The job is acked only after the commit, so a crash at any point leaves it to be delivered again.
/// </summary>
internal sealed class NodeRunner
{
    private static readonly ResiliencePropertyKey<AttemptState> StateKey = new("nova.attempt");
    private static readonly JsonElement NullElement = JsonDocument.Parse("null").RootElement;

    private readonly IStateStore _store;
    private readonly IJobQueue _queue;
    private readonly TransitionDispatcher _dispatcher;
    private readonly RunningRegistry _runs;
    private readonly HandlerRegistry _handlers;
    private readonly IServiceScopeFactory _scopes;
    private readonly ExecutionEventHub _hub;
    private readonly NovaWorkflowOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ErrorClassifier _classifier;
    private readonly ConcurrentDictionary<RetryPolicy, ResiliencePipeline<JsonElement?>> _pipelines = new();

    public NodeRunner(
        IStateStore store,
        IJobQueue queue,
        TransitionDispatcher dispatcher,
        RunningRegistry runs,
        HandlerRegistry handlers,
        IServiceScopeFactory scopes,
        ExecutionEventHub hub,
        IOptions<NovaWorkflowOptions> options,
        TimeProvider time,
        ILoggerFactory loggers)
    {
        _store = store;
        _queue = queue;
        _dispatcher = dispatcher;
        _runs = runs;
        _handlers = handlers;
        _scopes = scopes;
        _hub = hub;
        _options = options.Value;
        _time = time;
        _logger = loggers.CreateLogger("Nova.Workflow.Worker");
        _classifier = new ErrorClassifier(_options.ErrorClassifier);
        Offer = new ContinuationOffer(_options.WorkerId, _options.LeaseDuration, _options.MaxWorkerLosses);
    }

    /// <summary>This worker's identity and lease terms, for stores that start nodes for it (eager dispatch, claim-and-start).</summary>
    internal ContinuationOffer Offer { get; }

    /// <summary>Test seam: when set, heartbeats are skipped (a frozen worker).</summary>
    internal bool SuspendHeartbeats { get; set; }

    /// <summary>
    /// Runs a delivered job (starting it unless <paramref name="started"/> says it already is), then each child the store started for this worker on completion (eager dispatch), until
    /// none is offered or <paramref name="stopping"/> is signalled.
    /// </summary>
    public async Task RunAsync(LeasedJob leased, CancellationToken abort, CancellationToken stopping = default, StartNodeResult? started = null)
    {
        var job = leased.Job;
        try
        {
            // A job claimed and started in one step comes with its start.
            var start = started ?? await _store.TryStartNodeAsync(new StartNodeRequest(leased, _options.WorkerId, _options.LeaseDuration, _options.MaxWorkerLosses), abort).ConfigureAwait(false);
            switch (start.Outcome)
            {
                case StartOutcome.Started:
                    await _dispatcher.ApplyAsync(start.Transition, abort).ConfigureAwait(false);
                    var next = await ExecuteAsync(leased, start, abort, stopping).ConfigureAwait(false);
                    while (next is not null)
                    {
                        (leased, job) = (next.Job, next.Job.Job);
                        next = await ExecuteAsync(leased, next.Start, abort, stopping).ConfigureAwait(false);
                    }

                    return;
                case StartOutcome.RateLimited:
                    await _queue.ReleaseAsync(leased, start.RetryAfter, abort).ConfigureAwait(false);
                    return;
                case StartOutcome.Duplicate:
                    // Not acked: if the holder died, this delivery must be there to take over when its lease lapses.
                    // One heartbeat interval of slack: a holder whose heartbeat runs late is not taken over at once.
                    await _queue.ReleaseAsync(leased, start.RetryAfter + _options.HeartbeatInterval, abort).ConfigureAwait(false);
                    return;
                case StartOutcome.WorkerLost:
                    // Dead-letter before telling watchers, so whoever sees the failure also finds the entry.
                    Log.DeadLettered(_logger, job.NodeId, job.ExecutionId, DeadLetterReason.WorkerLost);
                    await _queue.DeadLetterAsync(NewDeadLetter(job, DeadLetterReason.WorkerLost, "Workers were lost on this node too many times in a row."), leased, abort).ConfigureAwait(false);
                    await _dispatcher.ApplyAsync(start.Transition, abort).ConfigureAwait(false);
                    return;
                default:
                    // Stale or paused: the state does not want this delivery (resume enqueues paused nodes again).
                    await _queue.AckAsync(leased, abort).ConfigureAwait(false);
                    return;
            }
        }
        catch (Exception ex)
        {
            // A poison job or a storage fault must not take the worker down: give the job back.
            Log.JobFailed(_logger, job.NodeId, job.ExecutionId, ex);
            try
            {
                await _queue.ReleaseAsync(leased, TimeSpan.FromSeconds(1), CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // The lease will lapse and the job will be delivered again.
            }
        }
    }

    /// <summary>Cancels the handlers of the runs under the hard stop <paramref name="abort"/>, which has fired.</summary>
    public void CancelRuns(CancellationToken abort) => _runs.CancelRuns(abort);

    /// <summary>Extends the leases of every attempt running here; revokes those this worker lost.</summary>
    public async Task HeartbeatAsync(CancellationToken cancellationToken)
    {
        if (SuspendHeartbeats)
        {
            return;
        }

        var running = _runs.Snapshot();
        if (running.Length == 0)
        {
            return;
        }

        var jobs = Array.ConvertAll(running, r => r.Job);
        await _queue.ExtendLeasesAsync(jobs, _options.LeaseDuration, cancellationToken).ConfigureAwait(false);
        var owned = await _store.HeartbeatAsync(jobs, _options.LeaseDuration, cancellationToken).ConfigureAwait(false);
        // The state is the truth: only a lost state lease revokes the run. A lost queue lease alone (a reclaimed
        // delivery) is harmless, since the redelivery finds the node running and backs off.
        for (var i = 0; i < running.Length; i++)
        {
            if (!owned[i] && !running[i].Completing)
            {
                Log.LeaseLost(_logger, _options.WorkerId, jobs[i].Job.NodeId, jobs[i].Job.ExecutionId);
                running[i].Revoke();
            }
        }
    }

    /// <summary>Runs a started attempt and commits its outcome; returns the child the store started for this worker, if any.</summary>
    private async Task<ContinuedStart?> ExecuteAsync(LeasedJob leased, StartNodeResult start, CancellationToken abort, CancellationToken stopping)
    {
        var job = leased.Job;
        var plan = start.Plan!;
        var index = plan.IndexOf(job.NodeId);
        var node = plan.Nodes[index];
        // The attempt's state is its run handle, its logging scope and its entry in the registry: one object per run.
        using var state = new AttemptState(this, leased, abort, node, plan.Retry[index], _time.GetUtcNow());
        _runs.Add(state);
        try
        {
            // A hard stop that fired before the run was registered did not reach it (RunningRegistry.CancelRuns).
            if (abort.IsCancellationRequested)
            {
                state.Cancel();
            }

            using var scope = _logger.BeginScope(state);
            using var activity = StartActivity(job, node);
            Log.NodeStarted(_logger, job.NodeId, job.ExecutionId, job.Attempt, _options.WorkerId);

            state.Context = new NodeContext(
                job.ExecutionId,
                job.NodeId,
                job.Attempt,
                start.WorkflowInput,
                start.ParentOutputs,
                DirectInput(plan, index, start),
                plan.Graph.ParentsOf(index).Length > 1 ? InputBuilder(plan, index) : null,
                node.Config,
                _logger,
                _hub.HasEventWatchers ? ProgressReporter(job) : null,
                state.Token);
            var outcome = await RunPipelineAsync(state).ConfigureAwait(false);
            state.Completing = true;
            return await CommitAsync(leased, plan, index, state, outcome, activity, abort, stopping).ConfigureAwait(false);
        }
        finally
        {
            // The attempt stopped waiting on the hard stop: its handler's token is cancelled here before its source goes,
            // whether or not the registry's walk (RunningRegistry.CancelRuns) has reached it yet.
            if (abort.IsCancellationRequested)
            {
                state.Cancel();
            }

            // Registered until the outcome is committed (heartbeats keep both leases alive while the commit waits or is
            // retried), and unregistered whatever failed on the way: a run left registered would be heartbeated for ever.
            _runs.Remove(state);
        }
    }

    private async Task<ContinuedStart?> CommitAsync(LeasedJob leased, ExecutionPlan plan, int index, AttemptState state, Outcome<JsonElement?> outcome, Activity? activity, CancellationToken abort, CancellationToken stopping)
    {
        var job = leased.Job;
        if (abort.IsCancellationRequested && !state.Revoked)
        {
            // Shutdown ran out of time: give the node back so another worker runs it now.
            await _store.ReleaseNodeAsync(leased, CancellationToken.None).ConfigureAwait(false);
            await _queue.ReleaseAsync(leased, TimeSpan.Zero, CancellationToken.None).ConfigureAwait(false);
            Log.ReleasedAtShutdown(_logger, _options.WorkerId, job.NodeId, job.ExecutionId);
            return null;
        }

        // Only a node with children can make one ready: a leaf's completion carries no offer.
        var offer = _options.EagerDispatch && !stopping.IsCancellationRequested && !abort.IsCancellationRequested && plan.Graph.ChildCount(index) > 0 ? Offer : null;
        var request = BuildCompletion(leased, plan, index, state, outcome, activity, offer);

        var result = await CompleteAsync(request, abort).ConfigureAwait(false);
        if (!result.Accepted)
        {
            Log.CompletionRejected(_logger, job.NodeId, job.ExecutionId, state.Attempt);
            await _queue.AckAsync(leased, CancellationToken.None).ConfigureAwait(false);
            return null;
        }

        if (request.Outcome == AttemptOutcome.Failed && request.RetryAt is null)
        {
            // Dead-letter (which also acks) before telling watchers, so whoever sees the failure also finds the entry.
            NovaDiagnostics.NodesFailed.Add(1);
            Log.DeadLettered(_logger, job.NodeId, job.ExecutionId, DeadLetterReason.Exhausted);
            await _queue.DeadLetterAsync(NewDeadLetter(job with { Attempt = state.Attempt }, DeadLetterReason.Exhausted, request.Error?.Message), leased, CancellationToken.None).ConfigureAwait(false);
            await _dispatcher.ApplyAsync(result.Transition, CancellationToken.None).ConfigureAwait(false);
        }
        else
        {
            // Ready children are enqueued before the ack: a crash in between redelivers a job the state then drops.
            await _dispatcher.ApplyAsync(result.Transition, CancellationToken.None).ConfigureAwait(false);
            if (!result.JobAcknowledged)
            {
                await _queue.AckAsync(leased, CancellationToken.None).ConfigureAwait(false);
            }
        }

        return result.Next;
    }

    /// <summary>
    /// Commits an outcome, trying again after a storage fault (a deadlock victim, a dropped connection) while the run's leases
    /// are kept alive: giving up throws away work that already ran and makes another worker run it again. A try whose
    /// commit landed before its connection failed makes the next one find the attempt no longer current, which is harmless.
    /// </summary>
    private ValueTask<CompleteNodeResult> CompleteAsync(CompleteNodeRequest request, CancellationToken abort)
    {
        // A store that answers at once (in memory) needs none of the retry machinery.
        var first = TryCompleteAsync(request);
        return first.IsCompletedSuccessfully ? first : RetryCompleteAsync(request, first, abort);
    }

    private async ValueTask<CompleteNodeResult> RetryCompleteAsync(CompleteNodeRequest request, ValueTask<CompleteNodeResult> pending, CancellationToken abort)
    {
        const int Tries = 5;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await pending.ConfigureAwait(false);
            }
            catch (Exception ex) when (attempt < Tries && !abort.IsCancellationRequested)
            {
                Log.CompletionRetrying(_logger, request.Run.Job.NodeId, request.Run.Job.ExecutionId, attempt, ex);
                await Task.Delay(TimeSpan.FromMilliseconds(50 << attempt), _time, abort).ConfigureAwait(false);
            }

            pending = TryCompleteAsync(request);
        }
    }

    /// <summary>One try; a store that throws before returning its task fails the try the same way.</summary>
    private ValueTask<CompleteNodeResult> TryCompleteAsync(CompleteNodeRequest request)
    {
        try
        {
            return _store.CompleteNodeAsync(request, CancellationToken.None);
        }
        catch (Exception ex)
        {
            return ValueTask.FromException<CompleteNodeResult>(ex);
        }
    }

    private CompleteNodeRequest BuildCompletion(LeasedJob leased, ExecutionPlan plan, int index, AttemptState state, Outcome<JsonElement?> outcome, Activity? activity, ContinuationOffer? offer)
    {
        var now = _time.GetUtcNow();
        NovaDiagnostics.NodeDuration.Record((now - state.StartedAt).TotalSeconds);
        var exception = outcome.Exception;
        JsonElement? output = null;
        bool[]? taken = null;
        if (exception is null)
        {
            output = outcome.Result;
            try
            {
                CheckSize(output);
                taken = plan.EvaluateEdges(index, output);
            }
            catch (Exception ex)
            {
                exception = ex is InvalidPayloadException ? ex : new PermanentNodeException($"An edge condition of node '{leased.Job.NodeId}' failed: {ex.Message}", ex);
            }
        }

        var request = new CompleteNodeRequest
        {
            Run = leased,
            Outcome = AttemptOutcome.Succeeded,
            FinalAttempt = state.Attempt,
            StartedAt = state.StartedAt,
            Output = output,
            TakenEdges = taken,
            Plan = plan,
            TraceParent = activity?.Id ?? leased.Job.TraceParent,
            PriorAttempts = state.Prior,
            Continue = offer,
        };
        if (exception is null)
        {
            NovaDiagnostics.NodesSucceeded.Add(1);
            activity?.SetStatus(ActivityStatusCode.Ok);
            return request;
        }

        var errorClass = _classifier.Classify(exception);
        var error = new NodeError(exception.GetType().Name, exception.Message, errorClass);
        Log.NodeFailed(_logger, leased.Job.NodeId, leased.Job.ExecutionId, state.Attempt, errorClass, error.Type);
        activity?.SetStatus(ActivityStatusCode.Error, error.Type);
        if (errorClass == ErrorClass.NeedsReview)
        {
            return request with { Outcome = AttemptOutcome.AwaitingReview, Output = null, TakenEdges = null, Error = error };
        }

        DateTimeOffset? retryAt = null;
        if (errorClass == ErrorClass.Transient && state.Attempt < state.Policy.MaxAttempts)
        {
            retryAt = now + state.Policy.Delay(state.Attempt + 1, Random.Shared.NextDouble());
            NovaDiagnostics.NodesRetried.Add(1);
        }

        return request with
        {
            Outcome = AttemptOutcome.Failed,
            Output = null,
            TakenEdges = null,
            Error = error,
            TimedOut = exception is HardTimeLimitExceededException,
            RetryAt = retryAt,
        };
    }

    private async ValueTask<Outcome<JsonElement?>> RunPipelineAsync(AttemptState state)
    {
        var pipeline = _pipelines.TryGetValue(state.Policy, out var built) ? built : _pipelines.GetOrAdd(state.Policy, BuildPipeline);
        if (ReferenceEquals(pipeline, ResiliencePipeline<JsonElement?>.Empty))
        {
            // No retry of this policy runs in process: one attempt, without a resilience context.
            try
            {
                return Outcome.FromResult(await AttemptAsync(state).ConfigureAwait(false));
            }
            catch (Exception ex)
            {
                return Outcome.FromException<JsonElement?>(ex);
            }
        }

        var context = ResilienceContextPool.Shared.Get(state.Token);
        context.Properties.Set(StateKey, state);
        try
        {
            return await pipeline.ExecuteOutcomeAsync(
                static async (_, s) =>
                {
                    try
                    {
                        return Outcome.FromResult(await s.Runner.AttemptAsync(s).ConfigureAwait(false));
                    }
                    catch (Exception ex)
                    {
                        return Outcome.FromException<JsonElement?>(ex);
                    }
                },
                context,
                state).ConfigureAwait(false);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    private ResiliencePipeline<JsonElement?> BuildPipeline(RetryPolicy policy)
    {
        if (!policy.RetriesInProcess)
        {
            return ResiliencePipeline<JsonElement?>.Empty;
        }

        return new ResiliencePipelineBuilder<JsonElement?> { TimeProvider = _time }
            .AddRetry(new RetryStrategyOptions<JsonElement?>
            {
                MaxRetryAttempts = policy.MaxAttempts - 1,
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } ex && args.Context.Properties.GetValue(StateKey, null!).CanRetryInProcess(ex)),
                DelayGenerator = args => ValueTask.FromResult<TimeSpan?>(args.Context.Properties.GetValue(StateKey, null!).NextDelay),
                OnRetry = args =>
                {
                    args.Context.Properties.GetValue(StateKey, null!).RecordRetry(args.Outcome.Exception!, _time.GetUtcNow());
                    NovaDiagnostics.NodesRetried.Add(1);
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
    }

    private async Task<JsonElement?> AttemptAsync(AttemptState state)
    {
        var context = state.Context;
        var node = state.Node;
        state.StartedAt = _time.GetUtcNow();
        context.Attempt = state.Attempt;
        NovaDiagnostics.NodesStarted.Add(1);
        var registration = _handlers.Find(node.Handler)
            ?? throw new PermanentNodeException($"Handler '{node.Handler}' is not registered in worker {_options.WorkerId}.");

        using var softCts = node.SoftTimeLimit is { } soft ? StartSoftLimit(state, soft) : null;
        context.CancellationToken = softCts?.Token ?? state.Token;

        AsyncServiceScope? scope = registration.ServiceType is null ? null : _scopes.CreateAsyncScope();
        try
        {
            var task = registration.Invoke(scope?.ServiceProvider ?? EmptyServices.Instance, context, _options.JsonOptions, context.CancellationToken);
            if (node.HardTimeLimit is not { } hard)
            {
                return task.IsCompletedSuccessfully ? task.Result : await task.AsTask().WaitAsync(state.Abort).ConfigureAwait(false);
            }

            try
            {
                return await task.AsTask().WaitAsync(hard, _time, state.Abort).ConfigureAwait(false);
            }
            catch (TimeoutException) when (!task.IsCompleted)
            {
                Log.HardTimeLimit(_logger, context.NodeId, context.ExecutionId, hard);
                throw new HardTimeLimitExceededException(hard);
            }
        }
        finally
        {
            if (scope is { } s)
            {
                await s.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// The handler's token under a soft time limit: cancelled (and logged) when the limit passes. Its own method, so the
    /// closure is allocated only for nodes that have the limit.
    /// </summary>
    private CancellationTokenSource StartSoftLimit(AttemptState state, TimeSpan limit)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(state.Token);
        var context = state.Context;
        // Disposing the source unregisters the callback.
        cts.Token.Register(() =>
        {
            if (!state.Token.IsCancellationRequested)
            {
                Log.SoftTimeLimit(_logger, context.NodeId, context.ExecutionId, limit);
            }
        });
        cts.CancelAfter(limit);
        return cts;
    }

    private void CheckSize(JsonElement? output)
    {
        if (output is { } o && o.ValueKind != JsonValueKind.Undefined && JsonMarshal.GetRawUtf8Value(o).Length > _options.MaxPayloadBytes)
        {
            throw new InvalidPayloadException($"The output is larger than MaxPayloadBytes ({_options.MaxPayloadBytes} bytes); store large data elsewhere and return a reference.");
        }
    }

    /// <summary>The input of a root (the workflow input) or of a node with one parent (its output); default for a join.</summary>
    private static JsonElement DirectInput(ExecutionPlan plan, int index, StartNodeResult start)
    {
        var parents = plan.Graph.ParentsOf(index);
        return parents.Length switch
        {
            0 => start.WorkflowInput,
            1 => start.ParentOutputs.TryGetValue(plan.Graph.Ids[parents[0]], out var only) ? only : NullElement,
            _ => default,
        };
    }

    // A method of its own, so the closure is allocated only for joins.
    private static Func<NodeContext, JsonElement> InputBuilder(ExecutionPlan plan, int index) => context => JoinInput(plan, index, context.ParentOutputs);

    /// <summary>The input of a node with several parents: an object of their outputs by node id (null for one that did not succeed).</summary>
    private static JsonElement JoinInput(ExecutionPlan plan, int index, IReadOnlyDictionary<string, JsonElement> outputs)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var p in plan.Graph.ParentsOf(index))
            {
                var id = plan.Graph.Ids[p];
                writer.WritePropertyName(id);
                if (outputs.TryGetValue(id, out var output))
                {
                    output.WriteTo(writer);
                }
                else
                {
                    writer.WriteNullValue();
                }
            }

            writer.WriteEndObject();
        }

        return JsonDocument.Parse(buffer.WrittenMemory).RootElement;
    }

    private static Activity? StartActivity(Job job, NodeDefinition node)
    {
        if (!NovaDiagnostics.ActivitySource.HasListeners())
        {
            return null;
        }

        ActivityContext.TryParse(job.TraceParent, null, out var parent);
        var activity = NovaDiagnostics.ActivitySource.StartActivity("nova.workflow.node", ActivityKind.Consumer, parent);
        activity?.SetTag("nova.execution_id", job.ExecutionId.ToString());
        activity?.SetTag("nova.node_id", job.NodeId);
        activity?.SetTag("nova.handler", node.Handler);
        activity?.SetTag("nova.attempt", job.Attempt);
        return activity;
    }

    // A method of its own: a lambda in ExecuteAsync would allocate its closure on every run, watched or not.
    private Action<double, string?> ProgressReporter(Job job) => (percent, message) => ReportProgress(job, percent, message);

    private void ReportProgress(Job job, double percent, string? message) =>
        _hub.Publish([new WorkflowEvent(EventTypes.NodeProgress, job.ExecutionId, job.NodeId, job.Attempt, _time.GetUtcNow(), default, message ?? percent.ToString("0.#", System.Globalization.CultureInfo.InvariantCulture) + "%")]);

    private DeadLetter NewDeadLetter(Job job, DeadLetterReason reason, string? error) =>
        new(Guid.CreateVersion7(), job.ExecutionId, job.NodeId, job.Attempt, job.Queue, reason, error, _time.GetUtcNow());

    /// <summary>The mutable state of one node run across in-process attempts; its run handle too.</summary>
    private sealed class AttemptState(NodeRunner runner, LeasedJob leased, CancellationToken abort, NodeDefinition node, RetryPolicy policy, DateTimeOffset startedAt)
        : RunHandle(leased, abort)
    {
        private List<NodeRunRecord>? _prior;

        public NodeRunner Runner { get; } = runner;

        /// <summary>Set once, before the first attempt (it carries this run's token).</summary>
        public NodeContext Context { get; set; } = null!;
        public NodeDefinition Node { get; } = node;
        public RetryPolicy Policy { get; } = policy;
        public int Attempt { get; private set; } = leased.Job.Attempt;
        public DateTimeOffset StartedAt { get; set; } = startedAt;
        public TimeSpan NextDelay { get; private set; }
        public IReadOnlyList<NodeRunRecord> Prior => (IReadOnlyList<NodeRunRecord>?)_prior ?? [];

        public bool CanRetryInProcess(Exception exception)
        {
            if (Token.IsCancellationRequested || exception is HardTimeLimitExceededException
                || Attempt >= Policy.MaxAttempts || Runner._classifier.Classify(exception) != ErrorClass.Transient)
            {
                return false;
            }

            NextDelay = Policy.Delay(Attempt + 1, Random.Shared.NextDouble());
            return NextDelay <= Policy.InProcessThreshold;
        }

        public void RecordRetry(Exception exception, DateTimeOffset now)
        {
            (_prior ??= []).Add(new NodeRunRecord
            {
                ExecutionId = Context.ExecutionId,
                NodeId = Context.NodeId,
                Handler = Node.Handler,
                Attempt = Attempt,
                Status = NodeRunStatus.Retrying,
                StartedAt = StartedAt,
                EndedAt = now,
                WorkerId = Runner._options.WorkerId,
                ErrorType = exception.GetType().Name,
                ErrorMessage = exception.Message,
            });
            Attempt++;
        }
    }

    private sealed class EmptyServices : IServiceProvider
    {
        public static readonly EmptyServices Instance = new();

        public object? GetService(Type serviceType) => null;
    }
}
