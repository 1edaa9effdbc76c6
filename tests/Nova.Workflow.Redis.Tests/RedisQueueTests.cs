using Microsoft.Extensions.Options;
using Nova.Workflow.Storage;
using StackExchange.Redis;
using Xunit;

namespace Nova.Workflow.Redis.Tests;

/// <summary>
/// The queue keeps one ready set ordered by priority, then sequence: the fairness rule finds the oldest job in the priority
/// bands of that set, and the age set earlier builds kept is deleted by the first dequeue.
/// </summary>
public sealed class RedisQueueTests(RedisServer server) : IClassFixture<RedisServer>
{
    // Every queue's fairness interval: each tenth take is the oldest ready job.
    private const int Interval = 10;

    private static Job Job(string node, int priority) => new(Guid.NewGuid(), node, 1, "q", priority);

    [Fact]
    public async Task The_fairness_take_is_the_oldest_job_of_any_priority()
    {
        var prefix = "fair" + Guid.NewGuid().ToString("N")[..6];
        using var queue = new RedisJobQueue(server.Connection, Options.Create(new RedisProviderOptions { Prefix = prefix }), TimeProvider.System);
        // Oldest first: a low-priority job, then a middle one, then a stream of high-priority ones.
        await queue.EnqueueAsync([Job("low", 1)]);
        await queue.EnqueueAsync([Job("middle", 4)]);
        for (var k = 1; k <= 30; k++)
        {
            await queue.EnqueueAsync([Job($"high{k}", 9)]);
        }

        var taken = new List<string>();
        for (var k = 0; k < 2 * Interval; k++)
        {
            var leased = Assert.Single(await queue.DequeueAsync(["q"], 1, TimeSpan.FromMinutes(1)));
            taken.Add(leased.Job.NodeId);
        }

        // Every take is the highest priority but the fairness ones, which take the oldest ready job: "low", then "middle".
        var expected = new List<string>();
        var high = 1;
        for (var k = 1; k <= 2 * Interval; k++)
        {
            expected.Add(k == Interval ? "low" : k == 2 * Interval ? "middle" : $"high{high++}");
        }

        Assert.Equal(expected, taken);
    }

    [Fact]
    public async Task A_queue_an_earlier_build_wrote_loses_its_age_set_at_the_first_dequeue_and_keeps_its_jobs()
    {
        var prefix = "age" + Guid.NewGuid().ToString("N")[..6];
        using var queue = new RedisJobQueue(server.Connection, Options.Create(new RedisProviderOptions { Prefix = prefix }), TimeProvider.System);
        var db = server.Connection.GetDatabase();
        var keys = queue.KeysOf("q");
        await queue.EnqueueAsync([Job("a", 5), Job("b", 5)]);
        // What an earlier build kept besides: each ready job in an age set by sequence, and no format mark.
        var age = keys.All[1];
        await db.SortedSetAddAsync(age, [new SortedSetEntry("old-a", 1), new SortedSetEntry("old-b", 2)]);
        await db.HashDeleteAsync(keys.Meta, "fmt");

        var first = Assert.Single(await queue.DequeueAsync(["q"], 1, TimeSpan.FromMinutes(1)));

        Assert.Equal("a", first.Job.NodeId);
        Assert.False(await db.KeyExistsAsync(age));
        Assert.Equal("2", (string?)await db.HashGetAsync(keys.Meta, "fmt"));
        Assert.Equal("b", Assert.Single(await queue.DequeueAsync(["q"], 10, TimeSpan.FromMinutes(1))).Job.NodeId);
    }
}
