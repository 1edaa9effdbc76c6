using Xunit;
using Nova.Workflow.Storage;

namespace Nova.Workflow.Tests.Storage;

public sealed class GroupCommitTests
{
    [Fact]
    public async Task A_lone_request_is_flushed_at_once_and_alone()
    {
        var batches = new List<int[]>();
        var commit = new GroupCommit<int, int>(
            batch =>
            {
                lock (batches)
                {
                    batches.Add(batch);
                }

                return Task.FromResult(Array.ConvertAll(batch, x => x * 10));
            },
            maxBatch: 8,
            maxInFlight: 1);

        Assert.Equal(70, await commit.SubmitAsync(7));
        Assert.Equal([7], Assert.Single(batches));
    }

    [Fact]
    public async Task Requests_arriving_during_a_flush_go_together_in_the_next_each_getting_its_own_result()
    {
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var batches = new List<int[]>();
        var commit = new GroupCommit<int, int>(
            async batch =>
            {
                lock (batches)
                {
                    batches.Add(batch);
                }

                if (batch[0] == 0)
                {
                    await first.Task;
                }

                return Array.ConvertAll(batch, x => x + 100);
            },
            maxBatch: 3,
            maxInFlight: 1);

        var held = commit.SubmitAsync(0);
        var waiting = Enumerable.Range(1, 5).Select(commit.SubmitAsync).ToArray();
        Assert.All(waiting, t => Assert.False(t.IsCompleted));
        first.SetResult();

        Assert.Equal(100, await held);
        var results = await Task.WhenAll(waiting);
        Assert.Equal([101, 102, 103, 104, 105], results);
        Assert.Equal([[0], [1, 2, 3], [4, 5]], batches);
    }

    [Fact]
    public async Task A_request_that_fails_its_batch_fails_alone_and_the_others_are_applied()
    {
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var commit = new GroupCommit<int, int>(
            async batch =>
            {
                if (batch[0] == 0)
                {
                    await first.Task;
                }

                return Array.IndexOf(batch, 13) >= 0 ? throw new InvalidOperationException("poison") : Array.ConvertAll(batch, x => -x);
            },
            maxBatch: 16,
            maxInFlight: 1);

        var held = commit.SubmitAsync(0);
        var good = commit.SubmitAsync(12);
        var bad = commit.SubmitAsync(13);
        var other = commit.SubmitAsync(14);
        first.SetResult();

        Assert.Equal(0, await held);
        Assert.Equal(-12, await good);
        Assert.Equal(-14, await other);
        Assert.Equal("poison", (await Assert.ThrowsAsync<InvalidOperationException>(() => bad)).Message);
    }
}
