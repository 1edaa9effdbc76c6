using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using StackExchange.Redis;
using Xunit;

namespace Nova.Workflow.Redis.Tests;

/// <summary>What the scripts publish to watchers: every transition to a watcher, the end alone to a waiter for the outcome.</summary>
public sealed class RedisWatchTests(RedisServer server) : IClassFixture<RedisServer>
{
    [Fact]
    public async Task A_waiter_for_the_outcome_gets_one_message_and_a_watcher_gets_every_transition()
    {
        var prefix = "watch" + Guid.NewGuid().ToString("N")[..6];
        var gates = new System.Collections.Concurrent.ConcurrentDictionary<Guid, TaskCompletionSource>();
        TaskCompletionSource Gate(Guid id) => gates.GetOrAdd(id, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        using var host = await RedisTestHost.StartAsync(server.Connection, prefix, nova => nova
            .AddHandler("gate", async (context, ct) =>
            {
                await Gate(context.ExecutionId).Task.WaitAsync(ct);
                return null;
            })
            .AddHandler("h", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(new WorkflowBuilder("three").Node("a", "gate").Node("b", "h", n => n.DependsOn("a")).Node("c", "h", n => n.DependsOn("b")).Build()));
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var keys = new RedisKeys(prefix);

        // Waiter alone: the scripts publish only the one that ends the execution.
        var waited = await client.StartAsync("three");
        var waitedMessages = await RecordMessagesAsync(keys, waited);
        var outcome = client.WaitForCompletionAsync(waited, TimeSpan.FromSeconds(20));
        await WaitForMarkAsync(keys, waited, "wt");
        Gate(waited).TrySetResult();
        Assert.Equal(ExecutionStatus.Succeeded, (await outcome).Status);
        // Messages arrive in publishing order, so once the end is in every earlier one is too.
        await PollAsync(() => waitedMessages.Any(IsEnd), "the end was not published to the waiter");
        var end = Assert.Single(waitedMessages);
        Assert.True(IsEnd(end));
        // It carries the end alone: the scripts keep no other event for a waiter (code 10, execution succeeded).
        Assert.Equal([10], Codes(end));

        // A watcher of every event: started and succeeded for each node, then the end.
        var watched = await client.StartAsync("three");
        var watchedMessages = await RecordMessagesAsync(keys, watched);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var watching = Task.Run(async () =>
        {
            var events = new List<WorkflowEvent>();
            await foreach (var e in client.WatchAsync(watched, timeout.Token))
            {
                events.Add(e);
            }

            return events;
        });
        await WaitForMarkAsync(keys, watched, "wu");
        Gate(watched).TrySetResult();
        var seen = await watching;
        Assert.Equal(EventTypes.ExecutionSucceeded, seen[^1].Type);
        Assert.Contains(seen, e => e.Type == EventTypes.NodeSucceeded && e.NodeId == "b");
        await PollAsync(() => watchedMessages.Any(IsEnd), "the end was not published to the watcher");
        Assert.True(watchedMessages.Count > 1, "a watcher of every event got the end alone");
        // The fixture's connection outlives this test: drop the recording subscriptions.
        await server.Connection.GetSubscriber().UnsubscribeAsync(keys.Events(waited));
        await server.Connection.GetSubscriber().UnsubscribeAsync(keys.Events(watched));
        await host.StopAsync();
    }

    // A message is { d: done, n: nodes, t: time, e: events }: the end is the one with every node done.
    private static bool IsEnd(string message)
    {
        using var json = JsonDocument.Parse(message);
        return json.RootElement.GetProperty("d").GetInt32() == json.RootElement.GetProperty("n").GetInt32();
    }

    // The event codes of a message: its events are flat, four values each (code, node, attempt, message).
    private static int[] Codes(string message)
    {
        using var json = JsonDocument.Parse(message);
        var events = json.RootElement.GetProperty("e");
        return [.. Enumerable.Range(0, events.GetArrayLength() / 4).Select(k => events[k * 4].GetInt32())];
    }

    private async Task<System.Collections.Concurrent.ConcurrentQueue<string>> RecordMessagesAsync(RedisKeys keys, Guid id)
    {
        var messages = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var queue = await server.Connection.GetSubscriber().SubscribeAsync(keys.Events(id));
        queue.OnMessage(m => messages.Enqueue((string)m.Message!));
        return messages;
    }

    private async Task WaitForMarkAsync(RedisKeys keys, Guid id, string field) =>
        await PollAsync(async () => (await server.Connection.GetDatabase().HashGetAsync(keys.Execution(id)[0], field)).HasValue, $"'{field}' was never marked");

    private static Task PollAsync(Func<bool> condition, string failure) => PollAsync(() => Task.FromResult(condition()), failure);

    private static async Task PollAsync(Func<Task<bool>> condition, string failure)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, failure);
            await Task.Delay(10);
        }
    }
}
