using System.Buffers;
using System.Text.Json;
using Nova.Workflow.Execution;

namespace Nova.Workflow.Storage;

/// <summary>
/// The state of one execution and every transition on it. Providers that can run C# inside
/// their atomic step (in-memory under a lock, PostgreSQL inside a transaction) apply these
/// methods; the logic of trigger rules, skip propagation, retries, pause and failure lives here once.
/// Not thread-safe: the caller serialises access per execution.
/// </summary>
internal sealed class ExecutionState
{
    public ExecutionState(NewExecution execution, DateTimeOffset now)
    {
        Id = execution.Id;
        Plan = execution.Plan;
        Input = execution.Input;
        IdempotencyKey = execution.IdempotencyKey;
        TraceParent = execution.TraceParent;
        CreatedAt = now;
        Nodes = new NodeRun[Plan.NodeCount];
        for (var i = 0; i < Nodes.Length; i++)
        {
            Nodes[i] = new NodeRun { PendingParents = Plan.Graph.ParentCount(i) };
        }

        InEdges = Plan.Graph.Parents.Length == 0 ? [] : new EdgeOutcome[Plan.Graph.Parents.Length];
        // A store that keeps the state for the execution's life sizes this (InMemoryStateStore); one that writes the records
        // out after each transition keeps only a transition's worth.
        History = [];
    }

    /// <summary>Rebuilds a persisted execution (history is not loaded: only new records accumulate).</summary>
    public ExecutionState(ExecutionDocument doc, ExecutionPlan plan)
    {
        Id = doc.Id;
        Plan = plan;
        Input = doc.Input;
        IdempotencyKey = doc.IdempotencyKey;
        TraceParent = doc.TraceParent;
        CreatedAt = doc.CreatedAt;
        Status = doc.Status;
        EndedAt = doc.EndedAt;
        Error = doc.Error;
        Output = doc.Output;
        Done = doc.Done;
        Nodes = doc.Nodes;
        InEdges = doc.InEdges;
        History = [];
    }

    public ExecutionDocument ToDocument() => new()
    {
        Id = Id,
        Input = Input,
        IdempotencyKey = IdempotencyKey,
        TraceParent = TraceParent,
        CreatedAt = CreatedAt,
        Status = Status,
        EndedAt = EndedAt,
        Error = Error,
        Output = Output,
        Done = Done,
        Nodes = Nodes,
        InEdges = InEdges,
    };

    public Guid Id { get; }

    public ExecutionPlan Plan { get; }

    public JsonElement Input { get; }

    public string? IdempotencyKey { get; }

    public string? TraceParent { get; }

    public ExecutionStatus Status { get; private set; } = ExecutionStatus.Pending;

    public DateTimeOffset CreatedAt { get; }

    public DateTimeOffset? EndedAt { get; private set; }

    public NodeError? Error { get; private set; }

    public JsonElement? Output { get; private set; }

    public NodeRun[] Nodes { get; }

    /// <summary>Outcome of each incoming edge, indexed by parent slot.</summary>
    public EdgeOutcome[] InEdges { get; }

    public int Done { get; private set; }

    /// <summary>
    /// The attempts recorded since this state was created or loaded, in order (all of them, for a state that lives in
    /// memory). Compact values, not records: the in-memory store keeps one per attempt, at least one per node, for the
    /// execution's life, and a large execution's records, one object each, were the bulk of what its run promoted through
    /// the collector's generations.
    /// </summary>
    public List<AttemptRecord> History { get; }

    /// <summary><see cref="History"/> as the records callers see.</summary>
    public NodeRunRecord[] HistoryRecords(DateTimeOffset? since = null)
    {
        var records = new List<NodeRunRecord>(History.Count);
        foreach (var r in History)
        {
            if (since is null || r.StartedAt >= since)
            {
                records.Add(new NodeRunRecord
                {
                    ExecutionId = Id,
                    NodeId = Plan.Graph.Ids[r.Node],
                    Handler = Plan.Nodes[r.Node].Handler,
                    Attempt = r.Attempt,
                    Status = r.Status,
                    StartedAt = r.StartedAt,
                    EndedAt = r.EndedAt,
                    WorkerId = r.WorkerId,
                    ErrorType = r.ErrorType,
                    ErrorMessage = r.ErrorMessage,
                });
            }
        }

        return [.. records];
    }

    public bool IsFinished => Status is ExecutionStatus.Succeeded or ExecutionStatus.Failed or ExecutionStatus.Canceled;

    public ExecutionProgress Progress => new(Done, Nodes.Length);

    /// <summary>
    /// Which events watchers in this process want, asked once per transition after its writes: the transition returns those,
    /// and always a canceled node's (its runs are revoked through it). Null: every event. Only a store whose transition is
    /// visible the moment it is applied (in memory) may set it: a watcher that subscribes later reads the written state.
    /// </summary>
    public Func<Guid, EventInterest>? EventsWanted { get; init; }

    public StoreTransition Start(DateTimeOffset now)
    {
        var t = new TransitionBuilder(this, now, TraceParent);
        Status = ExecutionStatus.Running;
        t.Event(EventTypes.ExecutionStarted, null, 0);
        // One note stands for every root's queued event (made at Build only when wanted): a wide workflow has thousands.
        t.RootsQueued();
        t.ReserveJobs(Plan.Roots.Length);
        foreach (var root in Plan.Roots)
        {
            Queue(ref t, root, 1, null, emitQueued: false);
        }

        return t.Build();
    }

    public StartNodeResult TryStart(StartNodeRequest request, DateTimeOffset now, Func<RateLimit, string, TimeSpan> acquireRate)
    {
        var job = request.Job.Job;
        var i = Plan.IndexOf(job.NodeId);
        if (i < 0 || IsFinished || Nodes[i].Attempt != job.Attempt)
        {
            return Outcome(StartOutcome.Stale);
        }

        ref var node = ref Nodes[i];
        var t = new TransitionBuilder(this, now, job.TraceParent);
        if (node.Status == NodeStatus.Running)
        {
            if (node.RunToken == request.Job.LeaseToken)
            {
                node.LeaseExpiresAt = now + request.Lease;
                return Started(i, t);
            }

            if (node.LeaseExpiresAt > now)
            {
                // Another worker holds it: come back when its lease would lapse (it may have died).
                return new StartNodeResult { Outcome = StartOutcome.Duplicate, RetryAfter = node.LeaseExpiresAt - now };
            }

            // The lease lapsed: the worker holding it died or froze. Record the lost attempt.
            History.Add(new AttemptRecord(i, node.Attempt, NodeRunStatus.Lost, node.StartedAt ?? now, now, node.WorkerId, "WorkerLost", "The worker stopped renewing its lease."));
            node.Losses++;
            if (node.Losses >= request.MaxWorkerLosses)
            {
                var error = new NodeError("WorkerLost", $"Workers were lost on this node {node.Losses} times in a row.", ErrorClass.Permanent);
                FailNode(ref t, i, error);
                CheckFinished(ref t);
                return new StartNodeResult { Outcome = StartOutcome.WorkerLost, Transition = t.Build() };
            }

            node.Status = NodeStatus.Queued;
            node.RunToken = Guid.Empty;
            node.ReadyAt = now;
        }

        if (node.Status != NodeStatus.Queued)
        {
            return Outcome(StartOutcome.Stale);
        }

        if (Status == ExecutionStatus.Paused)
        {
            return Outcome(StartOutcome.Paused);
        }

        if (Plan.Nodes[i].RateLimit is { } rate)
        {
            var wait = acquireRate(rate, Plan.Nodes[i].Handler);
            if (wait > TimeSpan.Zero)
            {
                return new StartNodeResult { Outcome = StartOutcome.RateLimited, RetryAfter = wait };
            }
        }

        node.Status = NodeStatus.Running;
        node.RunToken = request.Job.LeaseToken;
        node.WorkerId = request.WorkerId;
        node.StartedAt = now;
        node.LeaseExpiresAt = now + request.Lease;
        t.Event(EventTypes.NodeStarted, i, node.Attempt);
        return Started(i, t);
    }

    /// <summary>True when <see cref="TryStart"/> of <paramref name="job"/> can only start it or find it stale, changing nothing else (no takeover, pause or rate limit).</summary>
    public bool StartsPlainly(Job job)
    {
        var i = Plan.IndexOf(job.NodeId);
        return i >= 0 && Status == ExecutionStatus.Running && Nodes[i].Status == NodeStatus.Queued && Nodes[i].Attempt == job.Attempt && Plan.Nodes[i].RateLimit is null;
    }

    public bool Heartbeat(LeasedJob run, DateTimeOffset now, TimeSpan lease)
    {
        var i = Plan.IndexOf(run.Job.NodeId);
        if (i < 0 || !Owns(i, run))
        {
            return false;
        }

        Nodes[i].LeaseExpiresAt = now + lease;
        return true;
    }

    public CompleteNodeResult Complete(CompleteNodeRequest request, DateTimeOffset now)
    {
        var i = Plan.IndexOf(request.Run.Job.NodeId);
        if (i < 0 || IsFinished || !Owns(i, request.Run))
        {
            return CompleteNodeResult.Rejected;
        }

        ref var node = ref Nodes[i];
        var t = new TransitionBuilder(this, now, request.TraceParent);
        // In-process attempts of this run: recorded for this node, whatever their record says.
        foreach (var p in request.PriorAttempts)
        {
            History.Add(new AttemptRecord(i, p.Attempt, p.Status, p.StartedAt, p.EndedAt, p.WorkerId, p.ErrorType, p.ErrorMessage));
        }

        // One clock for history: the store's start time, unless in-process retries started a later attempt.
        var startedAt = request.PriorAttempts.Count == 0 && node.StartedAt is { } storeStart ? storeStart : request.StartedAt;
        node.Attempt = request.FinalAttempt;
        node.Losses = 0;
        node.RunToken = Guid.Empty;
        var error = request.Error;
        switch (request.Outcome)
        {
            case AttemptOutcome.Succeeded:
                History.Add(new AttemptRecord(i, node.Attempt, NodeRunStatus.Succeeded, startedAt, now, node.WorkerId, null, null));
                node.Output = request.Output;
                Finish(ref t, i, NodeStatus.Succeeded, EventTypes.NodeSucceeded, null);
                Propagate(ref t, i, request.TakenEdges);
                break;

            case AttemptOutcome.AwaitingReview:
                History.Add(new AttemptRecord(i, node.Attempt, NodeRunStatus.AwaitingReview, startedAt, now, node.WorkerId, error?.Type, error?.Message));
                node.Status = NodeStatus.AwaitingReview;
                node.Error = error;
                t.Event(EventTypes.NodeAwaitingReview, i, node.Attempt, error?.Message);
                if (Status == ExecutionStatus.Running)
                {
                    Status = ExecutionStatus.Paused;
                    t.Event(EventTypes.ExecutionPaused, null, 0, "Awaiting review of " + Plan.Graph.Ids[i]);
                }

                break;

            default:
                var status = request.TimedOut ? NodeRunStatus.TimedOut : request.RetryAt is null ? NodeRunStatus.Failed : NodeRunStatus.Retrying;
                History.Add(new AttemptRecord(i, node.Attempt, status, startedAt, now, node.WorkerId, error?.Type, error?.Message));
                node.Error = error;
                if (request.RetryAt is { } retryAt)
                {
                    t.Event(EventTypes.NodeRetrying, i, node.Attempt, error?.Message);
                    Queue(ref t, i, node.Attempt + 1, retryAt, emitQueued: false);
                }
                else
                {
                    FailNode(ref t, i, error ?? new NodeError("Unknown", "The node failed.", ErrorClass.Permanent));
                }

                break;
        }

        CheckFinished(ref t);
        var transition = t.Build();
        return ReferenceEquals(transition, StoreTransition.None) ? CompleteNodeResult.AcceptedQuietly : new CompleteNodeResult(true, transition);
    }

    /// <summary>
    /// Eager dispatch after a completion: when the worker offered to continue, starts the highest-priority child the
    /// transition made ready on the completed job's queue (due now, not rate limited) under a fresh lease, and returns the
    /// transition without that job (the store enqueues it leased) and with the start's events.
    /// </summary>
    public (StoreTransition Transition, ContinuedStart? Next) TryContinue(CompleteNodeRequest request, StoreTransition transition, DateTimeOffset now)
    {
        if (request.Continue is not { } offer || transition.Jobs.Count == 0)
        {
            return (transition, null);
        }

        var queue = request.Run.Job.Queue;
        Job? pick = null;
        foreach (var job in transition.Jobs)
        {
            if (job.NotBefore is null && job.Queue == queue && (pick is null || job.Priority > pick.Priority)
                && Plan.Nodes[Plan.IndexOf(job.NodeId)].RateLimit is null)
            {
                pick = job;
            }
        }

        if (pick is null)
        {
            return (transition, null);
        }

        var leased = new LeasedJob(pick, LeaseTokens.Next(), 1, now + offer.Lease);
        var start = TryStart(new StartNodeRequest(leased, offer.WorkerId, offer.Lease, offer.MaxWorkerLosses), now, static (_, _) => TimeSpan.Zero);
        if (start.Outcome != StartOutcome.Started)
        {
            return (transition, null);
        }

        var jobs = new List<Job>(transition.Jobs.Count - 1);
        foreach (var job in transition.Jobs)
        {
            if (!ReferenceEquals(job, pick))
            {
                jobs.Add(job);
            }
        }

        var events = new List<WorkflowEvent>(transition.Events.Count + start.Transition.Events.Count);
        events.AddRange(transition.Events);
        events.AddRange(start.Transition.Events);
        return (new StoreTransition(jobs, events), new ContinuedStart(leased, start with { Transition = StoreTransition.None }));
    }

    public bool Release(LeasedJob run, DateTimeOffset now)
    {
        var i = Plan.IndexOf(run.Job.NodeId);
        if (i < 0 || IsFinished || !Owns(i, run))
        {
            return false;
        }

        ref var node = ref Nodes[i];
        node.Status = NodeStatus.Queued;
        node.RunToken = Guid.Empty;
        node.ReadyAt = now;
        return true;
    }

    public StoreTransition Pause(DateTimeOffset now)
    {
        if (Status == ExecutionStatus.Paused)
        {
            return StoreTransition.None;
        }

        if (Status != ExecutionStatus.Running)
        {
            throw new InvalidExecutionStateException(Id, $"Execution {Id} is {Status}; only a running execution can be paused.");
        }

        var t = new TransitionBuilder(this, now, TraceParent);
        Status = ExecutionStatus.Paused;
        t.Event(EventTypes.ExecutionPaused, null, 0);
        return t.Build();
    }

    public StoreTransition Resume(ReviewDecision? decision, DateTimeOffset now)
    {
        if (Status != ExecutionStatus.Paused)
        {
            throw new InvalidExecutionStateException(Id, $"Execution {Id} is {Status}; only a paused execution can be resumed.");
        }

        var reviewing = Enumerable.Range(0, Nodes.Length).Where(i => Nodes[i].Status == NodeStatus.AwaitingReview).ToList();
        if (reviewing.Count > 0 && decision is null)
        {
            throw new InvalidExecutionStateException(Id, $"Execution {Id} awaits review of {string.Join(", ", reviewing.Select(i => Plan.Graph.Ids[i]))}; resume it with a ReviewDecision.");
        }

        // Evaluate the (user) edge conditions before changing anything: a throwing condition leaves the execution as it was.
        var taken = decision is { Approved: true } ? reviewing.ToDictionary(i => i, i => Plan.EvaluateEdges(i, decision.Output)) : null;
        var t = new TransitionBuilder(this, now, TraceParent);
        Status = ExecutionStatus.Running;
        t.Event(EventTypes.ExecutionResumed, null, 0);
        foreach (var i in reviewing)
        {
            // A rejection under FailFast ends the execution and cancels the other reviewed nodes: they are done.
            if (Nodes[i].Status != NodeStatus.AwaitingReview)
            {
                continue;
            }

            if (taken is not null)
            {
                Nodes[i].Output = decision!.Output;
                Nodes[i].Error = null;
                Finish(ref t, i, NodeStatus.Succeeded, EventTypes.NodeSucceeded, "Approved by review");
                Propagate(ref t, i, taken[i]);
            }
            else
            {
                FailNode(ref t, i, new NodeError("ReviewRejected", decision!.Reason ?? "Rejected by review.", ErrorClass.Permanent));
            }
        }

        if (Status == ExecutionStatus.Running)
        {
            for (var i = 0; i < Nodes.Length; i++)
            {
                if (Nodes[i].Status == NodeStatus.Queued)
                {
                    t.Job(i, Nodes[i].Attempt, Nodes[i].ReadyAt > now ? Nodes[i].ReadyAt : null);
                }
            }
        }

        CheckFinished(ref t);
        return t.Build();
    }

    public StoreTransition Cancel(DateTimeOffset now)
    {
        if (IsFinished)
        {
            return StoreTransition.None;
        }

        var t = new TransitionBuilder(this, now, TraceParent);
        CancelUnfinished(ref t);
        End(ref t, ExecutionStatus.Canceled, EventTypes.ExecutionCanceled, null);
        return t.Build();
    }

    public StoreTransition Retry(string? nodeId, DateTimeOffset now)
    {
        var selected = new List<int>();
        if (nodeId is not null)
        {
            var i = Plan.IndexOf(nodeId);
            if (i < 0 || Nodes[i].Status is not (NodeStatus.Failed or NodeStatus.Canceled))
            {
                throw new InvalidExecutionStateException(Id, $"Node '{nodeId}' of execution {Id} is not failed or canceled; there is nothing to retry.");
            }

            selected.Add(i);
        }
        else
        {
            for (var i = 0; i < Nodes.Length; i++)
            {
                if (Nodes[i].Status is NodeStatus.Failed or NodeStatus.Canceled)
                {
                    selected.Add(i);
                }
            }
        }

        if (selected.Count == 0)
        {
            throw new InvalidExecutionStateException(Id, $"Execution {Id} has no failed or canceled node to retry.");
        }

        // Reset the selection and everything downstream of it.
        var reset = new bool[Nodes.Length];
        var stack = new Stack<int>(selected);
        var order = new List<int>();
        while (stack.Count > 0)
        {
            var n = stack.Pop();
            if (reset[n])
            {
                continue;
            }

            reset[n] = true;
            order.Add(n);
            foreach (var c in Plan.Graph.ChildrenOf(n))
            {
                stack.Push(c);
            }
        }

        var t = new TransitionBuilder(this, now, TraceParent);
        foreach (var n in order)
        {
            ref var node = ref Nodes[n];
            if (IsTerminal(node.Status))
            {
                Done--;
            }

            node.Status = NodeStatus.Pending;
            node.Output = null;
            node.Error = null;
            node.RunToken = Guid.Empty;
            node.EndedAt = null;
            node.Losses = 0;
        }

        foreach (var n in order)
        {
            var pending = 0;
            var start = Plan.Graph.ParentStart[n];
            var parents = Plan.Graph.ParentsOf(n);
            for (var k = 0; k < parents.Length; k++)
            {
                if (!IsTerminal(Nodes[parents[k]].Status))
                {
                    InEdges[start + k] = EdgeOutcome.None; // Nodes[n] is marked changed below, with its pending parents
                    pending++;
                }
            }

            Nodes[n].PendingParents = pending;
        }

        Status = ExecutionStatus.Running;
        EndedAt = null;
        Error = null;
        Output = null;
        t.Event(EventTypes.ExecutionResumed, null, 0, "Retry");
        foreach (var n in order.Where(n => Nodes[n].PendingParents == 0).ToList())
        {
            if (Decide(ref t, n))
            {
                Propagate(ref t, n, null);
            }
        }

        CheckFinished(ref t);
        return t.Build();
    }

    public bool CollectStranded(DateTimeOffset queuedBefore, DateTimeOffset now, List<Job> into, int max)
    {
        if (Status != ExecutionStatus.Running)
        {
            return into.Count < max;
        }

        for (var i = 0; i < Nodes.Length && into.Count < max; i++)
        {
            ref var node = ref Nodes[i];
            var stranded = node.Status switch
            {
                NodeStatus.Queued => node.ReadyAt <= queuedBefore,
                NodeStatus.Running => node.LeaseExpiresAt <= now,
                _ => false,
            };
            if (stranded)
            {
                into.Add(MakeJob(i, node.Attempt, null, TraceParent));
            }
        }

        return into.Count < max;
    }

    public ExecutionSnapshot ToSnapshot()
    {
        var nodes = new NodeSnapshot[Nodes.Length];
        for (var i = 0; i < nodes.Length; i++)
        {
            ref readonly var n = ref Nodes[i];
            nodes[i] = new NodeSnapshot
            {
                Id = Plan.Graph.Ids[i],
                Handler = Plan.Nodes[i].Handler,
                Status = n.Status,
                Attempt = n.Attempt,
                StartedAt = n.StartedAt,
                EndedAt = n.EndedAt,
                WorkerId = n.WorkerId,
                Output = n.Output,
                Error = n.Error,
            };
        }

        return new ExecutionSnapshot
        {
            Id = Id,
            Workflow = Plan.Workflow,
            Version = Plan.Version,
            Status = Status,
            CreatedAt = CreatedAt,
            EndedAt = EndedAt,
            Input = Input,
            Output = Output,
            Error = Error,
            Progress = Progress,
            Nodes = nodes,
        };
    }

    public ExecutionSummary ToSummary() => new(
        Id,
        Plan.Workflow,
        Status,
        CreatedAt,
        [.. Enumerable.Range(0, Nodes.Length).Where(i => Nodes[i].Status == NodeStatus.AwaitingReview).Select(i => Plan.Graph.Ids[i])]);

    internal static bool IsTerminal(NodeStatus status) =>
        status is NodeStatus.Succeeded or NodeStatus.Failed or NodeStatus.Skipped or NodeStatus.Canceled;

    internal Job MakeJob(int i, int attempt, DateTimeOffset? notBefore, string? traceParent)
    {
        var def = Plan.Nodes[i];
        return new Job(Id, def.Id, attempt, def.Queue, def.Priority, notBefore, traceParent);
    }

    private bool Owns(int i, LeasedJob run)
    {
        ref var node = ref Nodes[i];
        return node.Status == NodeStatus.Running && node.RunToken == run.LeaseToken && node.Attempt == run.Job.Attempt;
    }

    private StartNodeResult Started(int i, TransitionBuilder t)
    {
        var parents = Plan.Graph.ParentsOf(i);
        var transition = t.Build();
        if (parents.Length == 0 && ReferenceEquals(transition, StoreTransition.None))
        {
            // Every start of a node without parents that caused nothing says the same: one answer per execution, not one per
            // node (the result is immutable). A wide workflow's roots made 142 of the 1,350 bytes allocated per node in memory.
            return _rootStart ??= new StartNodeResult { Outcome = StartOutcome.Started, Plan = Plan, WorkflowInput = Input, Transition = transition };
        }

        IReadOnlyDictionary<string, JsonElement> outputs = StartNodeResult.EmptyOutputs;
        if (parents.Length > 0)
        {
            var dict = new Dictionary<string, JsonElement>(parents.Length, StringComparer.Ordinal);
            foreach (var p in parents)
            {
                if (Nodes[p].Status == NodeStatus.Succeeded && Nodes[p].Output is { } output)
                {
                    dict[Plan.Graph.Ids[p]] = output;
                }
            }

            outputs = dict;
        }

        return new StartNodeResult { Outcome = StartOutcome.Started, Plan = Plan, WorkflowInput = Input, ParentOutputs = outputs, Transition = transition };
    }

    private static StartNodeResult Outcome(StartOutcome outcome) => outcome == StartOutcome.Stale ? StaleResult : PausedResult;

    private static readonly StartNodeResult StaleResult = new() { Outcome = StartOutcome.Stale };
    private static readonly StartNodeResult PausedResult = new() { Outcome = StartOutcome.Paused };

    /// <summary>The answer to every start of a node without parents that caused nothing (<see cref="Started"/>).</summary>
    private StartNodeResult? _rootStart;

    private void Queue(ref TransitionBuilder t, int i, int attempt, DateTimeOffset? notBefore, bool emitQueued = true)
    {
        ref var node = ref Nodes[i];
        node.Status = NodeStatus.Queued;
        node.Attempt = attempt;
        node.Losses = 0;
        node.RunToken = Guid.Empty;
        node.ReadyAt = notBefore ?? t.Now;
        if (emitQueued)
        {
            t.Event(EventTypes.NodeQueued, i, attempt);
        }

        if (Status == ExecutionStatus.Running)
        {
            t.Job(i, attempt, notBefore);
        }
    }

    private void Finish(ref TransitionBuilder t, int i, NodeStatus status, string eventType, string? message)
    {
        ref var node = ref Nodes[i];
        node.Status = status;
        node.EndedAt = t.Now;
        node.RunToken = Guid.Empty;
        // Only queued and running nodes use these; cleared, a finished node's document entry is a third smaller.
        node.ReadyAt = default;
        node.LeaseExpiresAt = default;
        Done++;
        t.Event(eventType, i, node.Attempt, message);
    }

    private void FailNode(ref TransitionBuilder t, int i, NodeError error)
    {
        Nodes[i].Error = error;
        Finish(ref t, i, NodeStatus.Failed, EventTypes.NodeFailed, error.Message);
        if (Plan.Definition.FailureMode == FailureMode.FailFast)
        {
            Error = error;
            CancelUnfinished(ref t);
            End(ref t, ExecutionStatus.Failed, EventTypes.ExecutionFailed, error.Message);
        }
        else
        {
            Propagate(ref t, i, null);
        }
    }

    /// <summary>Tells the children of a finished node how its edges ended, deciding those whose parents are all done.</summary>
    private void Propagate(ref TransitionBuilder t, int finished, bool[]? taken)
    {
        var graph = Plan.Graph;
        if (graph.ChildStart[finished + 1] == graph.ChildStart[finished])
        {
            return; // a leaf: nothing to tell, no work stack
        }

        var work = new Stack<(int Node, bool[]? Taken)>();
        work.Push((finished, taken));
        while (work.Count > 0)
        {
            var (n, tk) = work.Pop();
            var status = Nodes[n].Status;
            var start = graph.ChildStart[n];
            var end = graph.ChildStart[n + 1];
            for (var s = start; s < end; s++)
            {
                var c = graph.Children[s];
                InEdges[Plan.ChildSlotToParentSlot[s]] = status switch
                {
                    NodeStatus.Succeeded => tk is null || tk[s - start] ? EdgeOutcome.Succeeded : EdgeOutcome.Skipped,
                    NodeStatus.Failed => EdgeOutcome.Failed,
                    NodeStatus.Canceled => EdgeOutcome.Canceled,
                    _ => EdgeOutcome.Skipped,
                };
                Nodes[c].Changed = true; // its incoming edges are stored with it
                if (Nodes[c].Status == NodeStatus.Pending && --Nodes[c].PendingParents == 0 && Decide(ref t, c))
                {
                    work.Push((c, null));
                }
            }
        }
    }

    /// <summary>Applies the trigger rule of a node whose parents are all done; true when it was skipped (its children need telling).</summary>
    private bool Decide(ref TransitionBuilder t, int c)
    {
        if (RuleHolds(c))
        {
            Queue(ref t, c, Nodes[c].Attempt + 1, null);
            return false;
        }

        Finish(ref t, c, NodeStatus.Skipped, EventTypes.NodeSkipped, null);
        return true;
    }

    private bool RuleHolds(int c)
    {
        var start = Plan.Graph.ParentStart[c];
        var end = Plan.Graph.ParentStart[c + 1];
        if (start == end)
        {
            return true;
        }

        int succeeded = 0, failed = 0;
        for (var s = start; s < end; s++)
        {
            switch (InEdges[s])
            {
                case EdgeOutcome.Succeeded: succeeded++; break;
                case EdgeOutcome.Failed or EdgeOutcome.Canceled: failed++; break;
            }
        }

        return Plan.Nodes[c].TriggerRule switch
        {
            TriggerRule.AllDone => true,
            TriggerRule.AnySucceeded => succeeded > 0,
            TriggerRule.AnyFailed => failed > 0,
            TriggerRule.NoneFailed => failed == 0,
            _ => succeeded == end - start,
        };
    }

    private void CancelUnfinished(ref TransitionBuilder t)
    {
        for (var i = 0; i < Nodes.Length; i++)
        {
            ref var node = ref Nodes[i];
            if (IsTerminal(node.Status))
            {
                continue;
            }

            if (node.Status == NodeStatus.Running)
            {
                History.Add(new AttemptRecord(i, node.Attempt, NodeRunStatus.Canceled, node.StartedAt ?? t.Now, t.Now, node.WorkerId, null, null));
            }

            Finish(ref t, i, NodeStatus.Canceled, EventTypes.NodeCanceled, null);
        }
    }

    private void CheckFinished(ref TransitionBuilder t)
    {
        if (IsFinished || Done < Nodes.Length)
        {
            return;
        }

        var failed = Array.FindIndex(Nodes, n => n.Status == NodeStatus.Failed);
        if (failed >= 0)
        {
            Error = Nodes[failed].Error;
            End(ref t, ExecutionStatus.Failed, EventTypes.ExecutionFailed, Error?.Message);
        }
        else
        {
            Output = BuildOutput();
            End(ref t, ExecutionStatus.Succeeded, EventTypes.ExecutionSucceeded, null);
        }
    }

    private void End(ref TransitionBuilder t, ExecutionStatus status, string eventType, string? message)
    {
        Status = status;
        EndedAt = t.Now;
        t.Event(eventType, null, 0, message);
    }

    private JsonElement? BuildOutput()
    {
        var leaves = Plan.Leaves;
        if (leaves.Length == 1)
        {
            return Nodes[leaves[0]].Output;
        }

        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var leaf in leaves)
            {
                if (Nodes[leaf].Status == NodeStatus.Succeeded)
                {
                    writer.WritePropertyName(Plan.Graph.Ids[leaf]);
                    if (Nodes[leaf].Output is { } output)
                    {
                        output.WriteTo(writer);
                    }
                    else
                    {
                        writer.WriteNullValue();
                    }
                }
            }

            writer.WriteEndObject();
        }

        return JsonDocument.Parse(buffer.WrittenMemory).RootElement;
    }

    /// <summary>Collects the jobs and events of one transition.</summary>
    private struct TransitionBuilder(ExecutionState state, DateTimeOffset now, string? traceParent)
    {
        // The type of the note RootsQueued adds; compared by reference, so no event type can match it.
        private static readonly string RootsQueuedNote = new('*', 1);

        // Events are noted here, in a list each thread reuses (transitions run one at a time on a thread, each built before
        // the next begins), and made at Build only when wanted: most transitions have no watcher, and making their events
        // was a sixth of the bytes an in-memory worker allocated.
        [ThreadStatic]
        private static List<NotedEvent>? t_noted;

        private readonly List<NotedEvent> _noted = Reuse();
        private List<Job>? _jobs;

        public readonly DateTimeOffset Now => now;

        public void Job(int i, int attempt, DateTimeOffset? notBefore) =>
            (_jobs ??= []).Add(state.MakeJob(i, attempt, notBefore, traceParent));

        /// <summary>Sizes the job list for <paramref name="count"/> jobs up front (a list grown past 85 KB copies into the LOH).</summary>
        public void ReserveJobs(int count) => _jobs ??= new List<Job>(count);

        public readonly void Event(string type, int? node, int attempt, string? message = null) =>
            _noted.Add(new NotedEvent(type, node ?? -1, attempt, state.Progress, message));

        /// <summary>Notes the queued event of every root (first attempt) at once.</summary>
        public readonly void RootsQueued() => _noted.Add(new NotedEvent(RootsQueuedNote, -1, 1, state.Progress, null));

        public readonly StoreTransition Build()
        {
            var events = _noted.Count == 0 ? null : Events();
            return _jobs is null && events is null
                ? StoreTransition.None
                : new StoreTransition((IReadOnlyList<Job>?)_jobs ?? [], (IReadOnlyList<WorkflowEvent>?)events ?? []);
        }

        private readonly List<WorkflowEvent>? Events()
        {
            // A full fence between this transition's writes and the look at the watchers, as a subscription has between its
            // registration and its first read of the state: either this sees the watcher, or the watcher sees the writes.
            Interlocked.MemoryBarrier();
            var interest = state.EventsWanted?.Invoke(state.Id) ?? EventInterest.All;
            List<WorkflowEvent>? events = null;
            foreach (var e in _noted)
            {
                if (ReferenceEquals(e.Type, RootsQueuedNote))
                {
                    if (interest == EventInterest.All)
                    {
                        events ??= new(_noted.Count + state.Plan.Roots.Length);
                        foreach (var root in state.Plan.Roots)
                        {
                            events.Add(new WorkflowEvent(EventTypes.NodeQueued, state.Id, state.Plan.Graph.Ids[root], e.Attempt, now, e.Progress));
                        }
                    }
                }
                else if (interest == EventInterest.All || e.Type == EventTypes.NodeCanceled || (interest == EventInterest.Outcome && EventTypes.IsTerminal(e.Type)))
                {
                    (events ??= new(_noted.Count)).Add(new WorkflowEvent(e.Type, state.Id, e.Node >= 0 ? state.Plan.Graph.Ids[e.Node] : null, e.Attempt, now, e.Progress, e.Message));
                }
            }

            _noted.Clear();
            return events;
        }

        private static List<NotedEvent> Reuse()
        {
            // A thread keeps its list, unless a large transition (the create of a wide execution) grew it past a few KB.
            var noted = t_noted is { Capacity: <= 256 } kept ? kept : t_noted = [];
            noted.Clear();
            return noted;
        }
    }

    private readonly record struct NotedEvent(string Type, int Node, int Attempt, ExecutionProgress Progress, string? Message);
}

/// <summary>
/// The mutable state of one node in one execution. Every setter marks it <see cref="Changed"/>, and so does a change to the
/// outcome of one of its incoming edges.
/// </summary>
/// <remarks>
/// A struct, held in the execution's array: an execution in memory keeps its nodes for its life, and as objects, one each,
/// a large execution's nodes were copied from generation to generation by every collection its run went through. Change
/// one through a reference to its array element (<c>ref var node = ref Nodes[i]</c>): a copy's changes are lost.
/// </remarks>
[System.Text.Json.Serialization.JsonConverter(typeof(NodeRunConverter))]
internal struct NodeRun
{
    public NodeRun()
    {
    }

    /// <summary>
    /// Set by every change; a store that writes only the nodes that changed (PostgreSQL's chunks) clears it once it has taken
    /// them. New and deserialized nodes start changed.
    /// </summary>
    public bool Changed = true;

    public NodeStatus Status { get; set { field = value; Changed = true; } }
    public int Attempt { get; set { field = value; Changed = true; } }
    public Guid RunToken { get; set { field = value; Changed = true; } }
    public string? WorkerId { get; set { field = value; Changed = true; } }
    public DateTimeOffset? StartedAt { get; set { field = value; Changed = true; } }
    public DateTimeOffset? EndedAt { get; set { field = value; Changed = true; } }
    public DateTimeOffset ReadyAt { get; set { field = value; Changed = true; } }
    public DateTimeOffset LeaseExpiresAt { get; set { field = value; Changed = true; } }
    public JsonElement? Output { get; set { field = value; Changed = true; } }
    public NodeError? Error { get; set { field = value; Changed = true; } }
    public int PendingParents { get; set { field = value; Changed = true; } }
    public int Losses { get; set { field = value; Changed = true; } }
}

/// <summary>One attempt of node <see cref="Node"/> (its index in the plan) in an execution's history.</summary>
internal readonly record struct AttemptRecord(int Node, int Attempt, NodeRunStatus Status, DateTimeOffset StartedAt, DateTimeOffset EndedAt, string? WorkerId, string? ErrorType, string? ErrorMessage);

/// <summary>The persisted form of an <see cref="ExecutionState"/> (its plan is found again by workflow name and version).</summary>
internal sealed class ExecutionDocument
{
    public Guid Id { get; set; }
    public JsonElement Input { get; set; }
    public string? IdempotencyKey { get; set; }
    public string? TraceParent { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public ExecutionStatus Status { get; set; }
    public DateTimeOffset? EndedAt { get; set; }
    public NodeError? Error { get; set; }
    public JsonElement? Output { get; set; }
    public int Done { get; set; }
    public NodeRun[] Nodes { get; set; } = [];
    public EdgeOutcome[] InEdges { get; set; } = [];

    /// <summary>
    /// How many chunks the nodes and edges are stored in beside the document (a provider's choice for large executions; the
    /// two arrays above are then empty); 0 when they are in the document.
    /// </summary>
    public int Chunks { get; set; }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(ExecutionDocument))]
[System.Text.Json.Serialization.JsonSerializable(typeof(NodeError))]
[System.Text.Json.Serialization.JsonSourceGenerationOptions(
    DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault,
    Converters = [typeof(TicksTimestampConverter)])]
internal sealed partial class ExecutionDocumentContext : System.Text.Json.Serialization.JsonSerializerContext;

/// <summary>How an incoming edge ended.</summary>
internal enum EdgeOutcome : byte
{
    None,
    Succeeded,
    Skipped,
    Failed,
    Canceled,
}
