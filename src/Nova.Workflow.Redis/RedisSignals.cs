using System.Text.Json;
using System.Text.Json.Serialization;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Nova.Workflow.Execution;
using StackExchange.Redis;

namespace Nova.Workflow.Redis;

/// <summary>
/// Cross-process events for watchers through pub/sub. A watcher marks the execution as watched
/// (a "watch until" time the scripts check before publishing, so unwatched executions cost nothing)
/// and refreshes the mark while it watches. A missed message only delays: the client also polls the state.
/// </summary>
internal sealed class RedisRemoteEvents(IConnectionMultiplexer redis, IOptions<RedisProviderOptions> options, TimeProvider time) : IRemoteEvents
{
    private static readonly TimeSpan WatchMark = TimeSpan.FromSeconds(60);
    // The mark is compared with the server's TIME by the scripts, so it is set from the server's TIME too. ARGV[2] names
    // it: 'wu' for a watcher of every event, 'wt' for a waiter for the outcome (the scripts publish only the end to it).
    private const string MarkScript = "if redis.call('EXISTS', KEYS[1]) == 1 then local t = redis.call('TIME') redis.call('HSET', KEYS[1], ARGV[2], tonumber(t[1]) * 1000 + tonumber(ARGV[1])) end return 0";
    private readonly RedisKeys _keys = new(options.Value.Prefix);
    private readonly int _database = options.Value.Database;

    public async ValueTask<IAsyncDisposable> SubscribeAsync(Guid executionId, ChannelWriter<WorkflowEvent> writer, bool terminalOnly, CancellationToken cancellationToken)
    {
        var mark = terminalOnly ? "wt" : "wu";
        var channel = _keys.Events(executionId);
        var subscriber = redis.GetSubscriber();
        var queue = await subscriber.SubscribeAsync(channel).ConfigureAwait(false);
        queue.OnMessage(message =>
        {
            var batch = JsonSerializer.Deserialize((string)message.Message!, EventContext.Default.EventBatch);
            if (batch is null)
            {
                return;
            }

            foreach (var e in ScriptResults.ParseEvents(ToResults(batch.E), executionId, new ExecutionProgress(batch.D, batch.N), DateTimeOffset.FromUnixTimeMilliseconds(batch.T)))
            {
                // Another watcher of every event makes the scripts publish them all: this one keeps the end.
                if (!terminalOnly || e.IsTerminal)
                {
                    writer.TryWrite(e);
                }
            }
        });
        var refresh = new CancellationTokenSource();
        await MarkAsync(executionId, mark).ConfigureAwait(false);
        _ = RefreshAsync(executionId, mark, refresh.Token);
        return new Subscription(queue, refresh);
    }

    private async Task MarkAsync(Guid executionId, string mark)
    {
        await redis.GetDatabase(_database).ScriptEvaluateAsync(MarkScript, [_keys.Execution(executionId)[0]], [(long)WatchMark.TotalMilliseconds, mark]).ConfigureAwait(false);
    }

    private async Task RefreshAsync(Guid executionId, string mark, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(WatchMark / 3, time);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                await MarkAsync(executionId, mark).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            // Watching ended.
        }
        catch (RedisException)
        {
            // The mark lapses; the watcher still sees the state by polling.
        }
    }

    private static RedisResult[] ToResults(JsonElement[] flat) => [.. flat.Select(e => e.ValueKind == JsonValueKind.Number
        ? RedisResult.Create((RedisValue)e.GetInt64())
        : RedisResult.Create((RedisValue)e.GetString()))];

    private sealed class Subscription(ChannelMessageQueue queue, CancellationTokenSource refresh) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await refresh.CancelAsync().ConfigureAwait(false);
            refresh.Dispose();
            await queue.UnsubscribeAsync().ConfigureAwait(false);
        }
    }
}

internal sealed record EventBatch(
    [property: JsonPropertyName("d")] int D,
    [property: JsonPropertyName("n")] int N,
    [property: JsonPropertyName("t")] long T,
    [property: JsonPropertyName("e")] JsonElement[] E);

[JsonSerializable(typeof(EventBatch))]
internal sealed partial class EventContext : JsonSerializerContext;

/// <summary>Listens for cancel signals from other processes and revokes the attempts of that execution running here.</summary>
internal sealed class RedisCancelListener(IConnectionMultiplexer redis, IOptions<RedisProviderOptions> options, RunningRegistry runs) : IHostedService
{
    private readonly RedisChannel _channel = new RedisKeys(options.Value.Prefix).Cancel;

    public Task StartAsync(CancellationToken cancellationToken) =>
        redis.GetSubscriber().SubscribeAsync(_channel, (_, message) =>
        {
            if (Guid.TryParseExact((string?)message, "N", out var id))
            {
                runs.RevokeExecution(id);
            }
        });

    public Task StopAsync(CancellationToken cancellationToken) => redis.GetSubscriber().UnsubscribeAsync(_channel);
}
