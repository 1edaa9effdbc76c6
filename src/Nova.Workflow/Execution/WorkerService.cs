using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Nova.Workflow.Diagnostics;
using Nova.Workflow.Storage;
using Nova.Workflow.Storage.InMemory;

namespace Nova.Workflow.Execution;

/// <summary>
/// A worker: per served queue a fetch loop with its own concurrency, leasing at most as many
/// jobs as it has free slots (bounded prefetch), and one heartbeat loop for all running attempts.
/// On shutdown it stops fetching, lets running nodes finish within the host's shutdown timeout and
/// releases the rest.
/// </summary>
internal sealed class WorkerService : BackgroundService
{
    private const int InlineRunsPerYield = 32;

    private readonly IJobQueue _queue;
    private readonly IClaimingStateStore? _claimer;
    private readonly InMemoryJobQueue? _local;
    private readonly NodeRunner _runner;
    private readonly WorkerOptions _worker;
    private readonly NovaWorkflowOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly LocalWorkers _localWorkers;
    private readonly CancellationTokenSource _abort = new();

    public WorkerService(IJobQueue queue, IStateStore store, NodeRunner runner, LocalWorkers localWorkers, WorkerOptions worker, IOptions<NovaWorkflowOptions> options, TimeProvider time, ILoggerFactory loggers)
    {
        _localWorkers = localWorkers;
        _queue = queue;
        _claimer = store is IClaimingStateStore { CanClaim: true } claimer ? claimer : null;
        _local = _claimer is null ? queue as InMemoryJobQueue : null;
        _runner = runner;
        _worker = worker;
        _options = options.Value;
        _time = time;
        _logger = loggers.CreateLogger("Nova.Workflow.Worker");
        // Runs are not linked to the hard stop one by one (RunHandle): it cancels them all at once.
        _abort.Token.UnsafeRegister(static s => ((WorkerService)s!).CancelRuns(), this);
    }

    private void CancelRuns() => _runner.CancelRuns(_abort.Token);

    internal NodeRunner Runner => _runner;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        Log.WorkerStarted(_logger, _options.WorkerId, string.Join(", ", _worker.Queues.Select(q => $"{q.Key}×{q.Value}")));
        var loops = _worker.Queues.Select(q => Task.Run(() => FetchLoopAsync(q.Key, q.Value, stoppingToken), CancellationToken.None)).ToList();
        using var heartbeatCts = new CancellationTokenSource();
        var heartbeat = HeartbeatLoopAsync(heartbeatCts.Token);
        // Each loop returns once fetching stopped and its running nodes finished (or were released at the shutdown timeout).
        await Task.WhenAll(loops).ConfigureAwait(false);
        await heartbeatCts.CancelAsync().ConfigureAwait(false);
        await heartbeat.ConfigureAwait(false);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        // When the host's shutdown timeout fires, abort handlers; their nodes are released, never lost.
        await using var registration = cancellationToken.Register(() => _abort.Cancel()).ConfigureAwait(false);
        await base.StopAsync(CancellationToken.None).ConfigureAwait(false);
    }

    public override void Dispose()
    {
        _abort.Dispose();
        base.Dispose();
    }

    private async Task FetchLoopAsync(string queueName, int concurrency, CancellationToken stoppingToken)
    {
        var queues = new[] { queueName };
        using var slots = new WorkerSlots(concurrency, stoppingToken);
        // Lent to this process's clients for eager start (a root started in its create); disposed before the slots.
        using var lending = _claimer is null ? null : _localWorkers.Register(queueName, new SlotLender(
            slots, _runner.Offer, started => _ = RunAndFreeAsync(started.Job, started.Start, queueName, slots, stoppingToken)));
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (!await slots.TakeAsync().ConfigureAwait(false))
                {
                    break;
                }

                var free = 1 + slots.TakeFree(_worker.MaxBatch - 1);
                IReadOnlyList<(LeasedJob Job, StartNodeResult? Start)> jobs;
                try
                {
                    jobs = await ClaimAsync(queueName, queues, free, stoppingToken).ConfigureAwait(false);
                }
                catch
                {
                    // A failed or cancelled claim gives its slots back, or shutdown would wait for them forever.
                    slots.Release(free);
                    throw;
                }

                var unused = free - jobs.Count;
                if (unused > 0)
                {
                    slots.Release(unused);
                }

                for (var k = 0; k < jobs.Count; k++)
                {
                    var (job, start) = jobs[k];
                    _ = RunAndFreeAsync(job, start, queueName, slots, stoppingToken);
                }

                if (jobs.Count == 0)
                {
                    await _queue.WaitAsync(queues, _options.PollInterval, stoppingToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                Log.WorkerLoopFailed(_logger, queueName, ex);
                try
                {
                    await Task.Delay(_options.PollInterval, _time, stoppingToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }

        // Wait for this queue's running nodes before the slots go away.
        await slots.DrainAsync().ConfigureAwait(false);
    }

    /// <summary>Leases up to <paramref name="free"/> jobs; a store sharing the queue's database starts their nodes in the same transaction.</summary>
    private async ValueTask<IReadOnlyList<(LeasedJob Job, StartNodeResult? Start)>> ClaimAsync(string queueName, string[] queues, int free, CancellationToken stoppingToken)
    {
        if (_claimer is not null)
        {
            return await _claimer.ClaimAndStartAsync(queueName, free, _runner.Offer, stoppingToken).ConfigureAwait(false);
        }

        var jobs = await _queue.DequeueAsync(queues, free, _options.LeaseDuration, stoppingToken).ConfigureAwait(false);
        var claimed = new (LeasedJob, StartNodeResult?)[jobs.Count];
        for (var k = 0; k < claimed.Length; k++)
        {
            claimed[k] = (jobs[k], null);
        }

        return claimed;
    }

    /// <summary>
    /// Runs a job in a slot taken for it. With the in-process queue the slot then takes the queue's next ready job itself,
    /// until there is none: handing the slot back would cost a wake-up of the fetch loop, a claim and a new task per job.
    /// </summary>
    private async Task RunAndFreeAsync(LeasedJob job, StartNodeResult? start, string queueName, WorkerSlots slots, CancellationToken stopping)
    {
        try
        {
            await Task.Yield();
            for (var run = 1; ; run++)
            {
                await _runner.RunAsync(job, _abort.Token, stopping, start).ConfigureAwait(false);
                if (_local is null || stopping.IsCancellationRequested || !_local.TryTake(queueName, _options.LeaseDuration, out var next))
                {
                    break;
                }

                (job, start) = (next, null);
                if (run % InlineRunsPerYield == 0)
                {
                    // Handlers that finish synchronously would otherwise keep this thread for a whole backlog.
                    await Task.Yield();
                }
            }
        }
        finally
        {
            slots.Release();
        }
    }

    private async Task HeartbeatLoopAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_options.HeartbeatInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                try
                {
                    await _runner.HeartbeatAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Log.MaintenanceFailed(_logger, "heartbeat", ex);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopped.
        }
    }
}

/// <summary>
/// Background maintenance: the sweeper that re-enqueues stranded nodes (a lost job, a crash between
/// commit and enqueue in mixed providers) and retention cleanup of finished executions.
/// </summary>
internal sealed class MaintenanceService(IStateStore store, IJobQueue queue, IOptions<NovaWorkflowOptions> options, TimeProvider time, ILoggerFactory loggers) : BackgroundService
{
    private readonly ILogger _logger = loggers.CreateLogger("Nova.Workflow.Maintenance");
    private readonly NovaWorkflowOptions _options = options.Value;
    private DateTimeOffset _nextRetention = DateTimeOffset.MinValue;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_options.SweepInterval, time);
        try
        {
            do
            {
                await RunOnceAsync(stoppingToken).ConfigureAwait(false);
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopped.
        }
    }

    internal async Task RunOnceAsync(CancellationToken cancellationToken)
    {
        try
        {
            var now = await store.GetTimeAsync(cancellationToken).ConfigureAwait(false);
            var stranded = await store.FindStrandedAsync(now - _options.StrandedAfter, 10_000, cancellationToken).ConfigureAwait(false);
            if (stranded.Count > 0)
            {
                await queue.EnqueueAsync(stranded, cancellationToken).ConfigureAwait(false);
                Log.Swept(_logger, stranded.Count);
            }

            foreach (var name in stranded.Select(j => j.Queue).Append(WorkflowDefinition.DefaultQueue).Distinct())
            {
                NovaDiagnostics.SetQueueDepth(name, await queue.GetDepthAsync(name, cancellationToken).ConfigureAwait(false));
            }

            if (now >= _nextRetention)
            {
                _nextRetention = now + _options.RetentionInterval;
                var purged = await store.PurgeFinishedAsync(now - _options.Retention, cancellationToken).ConfigureAwait(false);
                if (purged > 0)
                {
                    Log.Purged(_logger, purged);
                }
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.MaintenanceFailed(_logger, "sweep", ex);
        }
    }
}
