using Nova.Workflow.Storage;
using Xunit;

namespace Nova.Workflow.Tests.Storage;

public sealed class ExecutionIdsTests
{
    [Fact]
    public void Ids_are_version_7_with_the_rfc_variant_and_carry_their_millisecond()
    {
        var time = DateTimeOffset.FromUnixTimeMilliseconds(1_790_000_000_123);
        for (var k = 0; k < 200; k++)
        {
            var text = ExecutionIds.Next(time).ToString("N");
            Assert.Equal('7', text[12]);
            Assert.Contains(text[16], "89ab");
            Assert.Equal(time.ToUnixTimeMilliseconds(), Convert.ToInt64(text[..12], 16));
        }
    }

    [Fact]
    public void Ids_sort_by_time_as_text_and_never_repeat_across_refills_and_threads()
    {
        var start = DateTimeOffset.FromUnixTimeMilliseconds(1_790_000_000_000);
        var ordered = Enumerable.Range(0, 300).Select(k => ExecutionIds.Next(start.AddMilliseconds(k)).ToString()).ToList();
        Assert.Equal(ordered.Order(StringComparer.Ordinal), ordered);

        // Same millisecond, many threads, many 64-id refills: the random bits alone keep them apart.
        var ids = new System.Collections.Concurrent.ConcurrentBag<Guid>();
        Parallel.For(0, 8, _ =>
        {
            for (var k = 0; k < 5_000; k++)
            {
                ids.Add(ExecutionIds.Next(start));
            }
        });
        Assert.Equal(40_000, ids.Distinct().Count());
    }
}
