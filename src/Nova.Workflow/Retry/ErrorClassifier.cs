namespace Nova.Workflow.Retry;

/// <summary>Decides whether an exception is transient, permanent or needs review.</summary>
internal sealed class ErrorClassifier(Func<Exception, ErrorClass?>? custom)
{
    public ErrorClass Classify(Exception exception) => exception switch
    {
        TransientNodeException => ErrorClass.Transient,
        PermanentNodeException or NodeInputException or InvalidPayloadException => ErrorClass.Permanent,
        NeedsReviewException => ErrorClass.NeedsReview,
        HardTimeLimitExceededException => ErrorClass.Transient,
        _ => custom?.Invoke(exception) ?? Default(exception),
    };

    private static ErrorClass Default(Exception exception) => exception switch
    {
        TimeoutException or System.Net.Http.HttpRequestException or IOException => ErrorClass.Transient,
        OperationCanceledException => ErrorClass.Transient,
        _ => ErrorClass.Permanent,
    };
}

/// <summary>An attempt ran past its hard time limit and was abandoned.</summary>
internal sealed class HardTimeLimitExceededException(TimeSpan limit)
    : TimeoutException($"The attempt exceeded its hard time limit of {limit} and was abandoned.");
