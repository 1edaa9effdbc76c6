using Nova.Workflow.Retry;
using Xunit;

namespace Nova.Workflow.Tests.Retry;

public sealed class RetryPolicyTests
{
    [Fact]
    public void Backoff_grows_exponentially_and_is_capped()
    {
        var policy = new RetryPolicy { InitialDelay = TimeSpan.FromSeconds(1), BackoffMultiplier = 2, MaxDelay = TimeSpan.FromSeconds(10), JitterFactor = 0 };
        Assert.Equal([1, 2, 4, 8, 10, 10], Enumerable.Range(2, 6).Select(a => policy.Delay(a, 0.5).TotalSeconds));
        Assert.Equal(TimeSpan.FromSeconds(10), policy.BaseDelay(500));
    }

    [Fact]
    public void Jitter_stays_within_its_factor_and_under_the_cap()
    {
        var policy = new RetryPolicy { InitialDelay = TimeSpan.FromSeconds(4), JitterFactor = 0.25, MaxDelay = TimeSpan.FromSeconds(5) };
        Assert.Equal(TimeSpan.FromSeconds(3), policy.Delay(2, 0));
        Assert.Equal(5, policy.Delay(2, 0.999999).TotalSeconds, 3);
        var random = new Random(7);
        for (var i = 0; i < 1000; i++)
        {
            var delay = policy.Delay(2, random.NextDouble());
            Assert.InRange(delay, TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(5));
        }
    }

    [Theory]
    // The defaults: the first retry waits 0.8 s at least, past the 250 ms threshold; later ones wait longer.
    [InlineData(3, 1000, 0.2, 300000, 250, false)]
    // One attempt, or no in-process threshold: never.
    [InlineData(1, 10, 0.2, 300000, 250, false)]
    [InlineData(3, 10, 0.2, 300000, 0, false)]
    // 300 ms less 20 % can be 240 ms: within 250 ms. 400 ms less 20 % cannot.
    [InlineData(3, 300, 0.2, 300000, 250, true)]
    [InlineData(3, 400, 0.2, 300000, 250, false)]
    // A cap under the threshold makes every delay short enough.
    [InlineData(3, 1000, 0.2, 200, 250, true)]
    public void Whether_a_policy_can_retry_in_process_follows_its_shortest_possible_delay(int attempts, int initialMs, double jitter, int maxMs, int thresholdMs, bool expected)
    {
        var policy = new RetryPolicy
        {
            MaxAttempts = attempts,
            InitialDelay = TimeSpan.FromMilliseconds(initialMs),
            JitterFactor = jitter,
            MaxDelay = TimeSpan.FromMilliseconds(maxMs),
            InProcessThreshold = TimeSpan.FromMilliseconds(thresholdMs),
        };
        Assert.Equal(expected, policy.RetriesInProcess);
        // It agrees with the delays themselves: the shortest the jitter can make the first retry's.
        Assert.Equal(expected, attempts > 1 && thresholdMs > 0 && policy.Delay(2, 0) <= policy.InProcessThreshold);
    }

    [Theory]
    [InlineData(typeof(TransientNodeException), ErrorClass.Transient)]
    [InlineData(typeof(TimeoutException), ErrorClass.Transient)]
    [InlineData(typeof(IOException), ErrorClass.Transient)]
    [InlineData(typeof(System.Net.Http.HttpRequestException), ErrorClass.Transient)]
    [InlineData(typeof(PermanentNodeException), ErrorClass.Permanent)]
    [InlineData(typeof(NodeInputException), ErrorClass.Permanent)]
    [InlineData(typeof(NeedsReviewException), ErrorClass.NeedsReview)]
    [InlineData(typeof(InvalidOperationException), ErrorClass.Permanent)]
    [InlineData(typeof(ArgumentException), ErrorClass.Permanent)]
    public void Default_classification(Type type, ErrorClass expected)
    {
        var exception = (Exception)Activator.CreateInstance(type, "x")!;
        Assert.Equal(expected, new ErrorClassifier(null).Classify(exception));
    }

    [Fact]
    public void A_custom_classifier_decides_unknown_exceptions_but_not_the_explicit_ones()
    {
        var classifier = new ErrorClassifier(ex => ex is InvalidOperationException ? ErrorClass.Transient : ErrorClass.NeedsReview);
        Assert.Equal(ErrorClass.Transient, classifier.Classify(new InvalidOperationException()));
        Assert.Equal(ErrorClass.NeedsReview, classifier.Classify(new FormatException()));
        Assert.Equal(ErrorClass.Permanent, classifier.Classify(new PermanentNodeException("p")));
    }
}
