using Microsoft.Extensions.Options;
using Nova.Workflow.Conformance;
using Nova.Workflow.Storage;
using StackExchange.Redis;
using Xunit;

namespace Nova.Workflow.Redis.Tests;

/// <summary>Idle workers are woken by pub/sub; a queue publishes a wake-up only while a worker waits on it.</summary>
public sealed class RedisWakeTests(RedisServer server) : IClassFixture<RedisServer>
{
    [Fact]
    public async Task An_enqueue_publishes_a_wake_up_only_after_a_worker_found_the_queue_empty()
    {
        var prefix = "wake" + Guid.NewGuid().ToString("N")[..6];
        var keys = new RedisKeys(prefix);
        using var queue = new RedisJobQueue(server.Connection, Options.Create(new RedisProviderOptions { Prefix = prefix }), TimeProvider.System);
        var messages = 0;
        var subscriber = server.Connection.GetSubscriber();
        await subscriber.SubscribeAsync(keys.Wake("q"), (_, _) => Interlocked.Increment(ref messages));
        try
        {
            Job Job(int attempt) => new(Guid.NewGuid(), "n", attempt, "q", 5);

            // No worker waits: the job is queued and nothing is published.
            await queue.EnqueueAsync([Job(1)]);
            Assert.False(await server.Connection.GetDatabase().HashExistsAsync(keys.Queue("q").Meta, "idle"));
            Assert.Single(await queue.DequeueAsync(["q"], 10, TimeSpan.FromMinutes(1)));

            // A worker finds the queue empty and waits: the next enqueue wakes it, with one message.
            var waiting = queue.WaitAsync(["q"], TimeSpan.FromSeconds(30)).AsTask();
            await Eventually.TrueAsync(async () => await server.Connection.GetDatabase().HashExistsAsync(keys.Queue("q").Meta, "idle"), "the waiting worker marks the queue idle");
            await queue.EnqueueAsync([Job(1), Job(1)]);
            await waiting.WaitAsync(TimeSpan.FromSeconds(10));
            await Eventually.TrueAsync(() => Task.FromResult(Volatile.Read(ref messages) == 1), "exactly one wake-up published by the enqueue after the wait");

            // The mark is taken: more enqueues publish nothing while the jobs are worked on.
            await queue.EnqueueAsync([Job(1)]);
            Assert.Equal(3, (await queue.DequeueAsync(["q"], 10, TimeSpan.FromMinutes(1))).Count);
            await subscriber.PingAsync();
            Assert.Equal(1, Volatile.Read(ref messages));
        }
        finally
        {
            await subscriber.UnsubscribeAsync(keys.Wake("q"));
        }
    }
}
