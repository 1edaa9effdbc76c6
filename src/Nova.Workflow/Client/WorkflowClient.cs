using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Nova.Workflow.Diagnostics;
using Nova.Workflow.Execution;
using Nova.Workflow.Hosting;
using Nova.Workflow.Storage;

namespace Nova.Workflow.Client;

internal sealed class WorkflowClient(
    WorkflowRegistry registry,
    IStateStore store,
    IJobQueue queue,
    TransitionDispatcher dispatcher,
    ExecutionEventHub hub,
    IOptions<NovaWorkflowOptions> options,
    TimeProvider time,
    ILoggerFactory loggers,
    LocalWorkers localWorkers,
    IRemoteEvents? remoteEvents = null) : IWorkflowClient
{
    private static readonly JsonElement NullInput = JsonDocument.Parse("null").RootElement;
    private readonly NovaWorkflowOptions _options = options.Value;
    private readonly ILogger _logger = loggers.CreateLogger("Nova.Workflow.Client");

    public async Task<Guid> StartAsync(string workflow, object? input = null, StartOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(workflow);
        var plan = registry.Get(workflow, options?.Version);
        var payload = SerializeInput(input);
        using var activity = NovaDiagnostics.ActivitySource.HasListeners()
            ? NovaDiagnostics.ActivitySource.StartActivity("nova.workflow.start", ActivityKind.Producer)
            : null;
        var execution = new NewExecution(ExecutionIds.Next(time.GetUtcNow()), plan, payload, options?.IdempotencyKey, activity?.Id ?? Activity.Current?.Id);
        var result = await CreateAsync(execution, cancellationToken).ConfigureAwait(false);
        if (result.Created)
        {
            activity?.SetTag("nova.execution_id", result.ExecutionId.ToString());
            Log.ExecutionStarted(_logger, result.ExecutionId, plan.Workflow, plan.Version);
            await dispatcher.ApplyAsync(result.Transition, cancellationToken).ConfigureAwait(false);
        }

        return result.ExecutionId;
    }

    /// <summary>
    /// Creates the execution; eager start: with a worker of this process serving a root's queue and a slot free there, a
    /// store that can starts that root for it in the same step (when the queue has nothing waiting), and it runs here at once.
    /// </summary>
    private async ValueTask<CreateExecutionResult> CreateAsync(NewExecution execution, CancellationToken cancellationToken)
    {
        if (!_options.EagerDispatch || store is not IStartingStateStore { CanStartOnCreate: true } starter
            || !localWorkers.TryLend(execution.Plan, out var lender, out var queue))
        {
            return await store.CreateExecutionAsync(execution, cancellationToken).ConfigureAwait(false);
        }

        CreateExecutionResult result;
        ContinuedStart? started;
        try
        {
            (result, started) = await starter.CreateAndStartAsync(execution, queue, lender.Offer, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            lender.Return();
            throw;
        }

        if (started is null)
        {
            lender.Return();
        }
        else
        {
            lender.Run(started);
        }

        return result;
    }

    public async Task<ExecutionSnapshot> RunAsync(string workflow, object? input = null, StartOptions? options = null, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var id = await StartAsync(workflow, input, options, cancellationToken).ConfigureAwait(false);
        var snapshot = await WaitForCompletionAsync(id, timeout, cancellationToken).ConfigureAwait(false);
        return snapshot.Status == ExecutionStatus.Succeeded ? snapshot : throw new WorkflowExecutionException(snapshot);
    }

    public async Task<ExecutionSnapshot> GetAsync(Guid executionId, CancellationToken cancellationToken = default) =>
        await store.GetExecutionAsync(executionId, cancellationToken).ConfigureAwait(false) ?? throw new ExecutionNotFoundException(executionId);

    public async Task<ExecutionSnapshot> WaitForCompletionAsync(Guid executionId, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        using var timeoutCts = timeout is { } t ? new CancellationTokenSource(t, time) : null;
        using var linked = timeoutCts is null ? null : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeoutCts.Token);
        var token = linked?.Token ?? cancellationToken;
        try
        {
            // Only the end matters here: a terminal-only watch spares the store publishing every transition to this waiter.
            await foreach (var e in WatchCoreAsync(executionId, terminalOnly: true, token).ConfigureAwait(false))
            {
                _ = e;
            }

            return await GetAsync(executionId, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (timeoutCts?.IsCancellationRequested == true && !cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"Execution {executionId} did not finish within {timeout}.");
        }
    }

    /// <summary>Whether the execution finished, read without its nodes where the store can.</summary>
    private async ValueTask<bool> IsFinishedAsync(Guid executionId, CancellationToken cancellationToken)
    {
        if (store is not IExecutionStatusReader reader)
        {
            return (await GetAsync(executionId, cancellationToken).ConfigureAwait(false)).IsFinished;
        }

        return await reader.GetStatusAsync(executionId, cancellationToken).ConfigureAwait(false) switch
        {
            null => throw new ExecutionNotFoundException(executionId),
            var status => status is ExecutionStatus.Succeeded or ExecutionStatus.Failed or ExecutionStatus.Canceled,
        };
    }

    public IAsyncEnumerable<WorkflowEvent> WatchAsync(Guid executionId, CancellationToken cancellationToken = default) =>
        WatchCoreAsync(executionId, terminalOnly: false, cancellationToken);

    private async IAsyncEnumerable<WorkflowEvent> WatchCoreAsync(Guid executionId, bool terminalOnly, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // Subscribe first, then read the state: an event between the two is in the channel, not lost.
        var channel = Channel.CreateUnbounded<WorkflowEvent>(new UnboundedChannelOptions { SingleReader = true });
        using var local = remoteEvents is null ? hub.Subscribe(executionId, channel.Writer, terminalOnly) : null;
        await using var remote = remoteEvents is null ? null : await remoteEvents.SubscribeAsync(executionId, channel.Writer, terminalOnly, cancellationToken).ConfigureAwait(false);
        if (await IsFinishedAsync(executionId, cancellationToken).ConfigureAwait(false))
        {
            yield return TerminalEvent(await GetAsync(executionId, cancellationToken).ConfigureAwait(false));
            yield break;
        }

        while (true)
        {
            // Events of other processes do not reach this hub: the durable state is the truth, polled as a safety net.
            using var pollCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            pollCts.CancelAfter(_options.PollInterval);
            bool available;
            try
            {
                available = await channel.Reader.WaitToReadAsync(pollCts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                available = false;
            }

            if (available)
            {
                while (channel.Reader.TryRead(out var e))
                {
                    // The state decides: a late terminal event of an earlier run (before a retry) is not the end.
                    if (e.IsTerminal && !await IsFinishedAsync(executionId, cancellationToken).ConfigureAwait(false))
                    {
                        continue;
                    }

                    yield return e;
                    if (e.IsTerminal)
                    {
                        yield break;
                    }
                }

                continue;
            }

            if (await IsFinishedAsync(executionId, cancellationToken).ConfigureAwait(false))
            {
                while (channel.Reader.TryRead(out var e))
                {
                    yield return e;
                    if (e.IsTerminal)
                    {
                        yield break;
                    }
                }

                yield return TerminalEvent(await GetAsync(executionId, cancellationToken).ConfigureAwait(false));
                yield break;
            }
        }
    }

    public async Task CancelAsync(Guid executionId, CancellationToken cancellationToken = default) =>
        await dispatcher.ApplyAsync(await store.CancelAsync(executionId, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);

    public async Task PauseAsync(Guid executionId, CancellationToken cancellationToken = default) =>
        await dispatcher.ApplyAsync(await store.PauseAsync(executionId, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);

    public async Task ResumeAsync(Guid executionId, ReviewDecision? decision = null, CancellationToken cancellationToken = default) =>
        await dispatcher.ApplyAsync(await store.ResumeAsync(executionId, decision, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);

    public async Task RetryAsync(Guid executionId, CancellationToken cancellationToken = default) =>
        await dispatcher.ApplyAsync(await store.RetryAsync(executionId, null, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);

    public async Task<IReadOnlyList<NodeRunRecord>> GetHistoryAsync(Guid executionId, CancellationToken cancellationToken = default) =>
        await store.GetHistoryAsync(executionId, cancellationToken).ConfigureAwait(false) ?? throw new ExecutionNotFoundException(executionId);

    public async Task<IReadOnlyList<ExecutionSummary>> ListAsync(ExecutionQuery query, CancellationToken cancellationToken = default) =>
        await store.ListExecutionsAsync(query, cancellationToken).ConfigureAwait(false);

    public async Task<IReadOnlyList<HandlerStats>> GetHandlerStatsAsync(TimeSpan window, CancellationToken cancellationToken = default)
    {
        var now = await store.GetTimeAsync(cancellationToken).ConfigureAwait(false);
        return await store.GetHandlerStatsAsync(now - window, cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<DeadLetter>> ListDeadLettersAsync(int max = 100, CancellationToken cancellationToken = default) =>
        await queue.ListDeadLettersAsync(max, cancellationToken).ConfigureAwait(false);

    public async Task<bool> RequeueDeadLetterAsync(Guid deadLetterId, CancellationToken cancellationToken = default)
    {
        var entry = await queue.TakeDeadLetterAsync(deadLetterId, cancellationToken).ConfigureAwait(false);
        if (entry is null)
        {
            return false;
        }

        try
        {
            var transition = await store.RetryAsync(entry.ExecutionId, entry.NodeId, cancellationToken).ConfigureAwait(false);
            await dispatcher.ApplyAsync(transition, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch
        {
            // The entry must not be lost when the retry cannot be applied.
            await queue.DeadLetterAsync(entry, null, CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    public async Task<bool> PurgeDeadLetterAsync(Guid deadLetterId, CancellationToken cancellationToken = default) =>
        await queue.TakeDeadLetterAsync(deadLetterId, cancellationToken).ConfigureAwait(false) is not null;

    private JsonElement SerializeInput(object? input)
    {
        if (input is null)
        {
            return NullInput;
        }

        byte[] bytes;
        try
        {
            bytes = input is JsonElement element
                ? (element.ValueKind == JsonValueKind.Undefined ? "null"u8.ToArray() : JsonMarshal.GetRawUtf8Value(element).ToArray())
                : JsonSerializer.SerializeToUtf8Bytes(input, input.GetType(), _options.JsonOptions);
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException)
        {
            throw new InvalidPayloadException($"The workflow input cannot be serialized to JSON: {ex.Message}");
        }

        if (bytes.Length > _options.MaxPayloadBytes)
        {
            throw new InvalidPayloadException($"The workflow input is {bytes.Length} bytes, over MaxPayloadBytes ({_options.MaxPayloadBytes}); pass a reference to large data instead.");
        }

        return JsonDocument.Parse(bytes).RootElement;
    }

    private static WorkflowEvent TerminalEvent(ExecutionSnapshot snapshot) => new(
        snapshot.Status switch
        {
            ExecutionStatus.Succeeded => EventTypes.ExecutionSucceeded,
            ExecutionStatus.Failed => EventTypes.ExecutionFailed,
            _ => EventTypes.ExecutionCanceled,
        },
        snapshot.Id,
        null,
        0,
        snapshot.EndedAt ?? snapshot.CreatedAt,
        snapshot.Progress,
        snapshot.Error?.Message);
}
