using Nova.Workflow.Conformance;
using Nova.Workflow.Storage;
using Nova.Workflow.Storage.InMemory;
using Xunit;

namespace Nova.Workflow.Tests.Storage;

public sealed class InMemoryJobQueueTests
{
    [Fact]
    public async Task Acked_leases_are_not_kept_and_a_lapsed_one_is_still_delivered_again()
    {
        var queue = new InMemoryJobQueue(TimeProvider.System);
        var execution = Guid.NewGuid();

        // Thousands of jobs leased and acked: the expiry heap holds no more than a bounded number of them.
        await queue.EnqueueAsync([.. Enumerable.Range(0, 5_000).Select(i => new Job(execution, $"n{i}", 1, "q", 5))]);
        for (var round = 0; round < 50; round++)
        {
            foreach (var leased in await queue.DequeueAsync(["q"], 100, TimeSpan.FromMinutes(5)))
            {
                Assert.True(await queue.AckAsync(leased));
            }
        }

        Assert.True(queue.TrackedLeases <= 1_024, $"{queue.TrackedLeases} lease expiries kept after every job was acked");

        // A lease left to lapse after the heap was rebuilt is delivered again.
        await queue.EnqueueAsync([new Job(execution, "late", 1, "q", 5)]);
        var first = Assert.Single(await queue.DequeueAsync(["q"], 10, TimeSpan.FromMilliseconds(50)));
        IReadOnlyList<LeasedJob> again = [];
        await Eventually.TrueAsync(async () => (again = await queue.DequeueAsync(["q"], 10, TimeSpan.FromMinutes(5))).Count > 0, "the lapsed lease delivered again");

        Assert.Equal(first.Job, Assert.Single(again).Job);
        Assert.Equal(2, again[0].DeliveryCount);
    }
}
