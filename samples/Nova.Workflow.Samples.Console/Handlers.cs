using System.Text.Json;
using Nova.Workflow;

namespace Nova.Workflow.Samples.Console;

internal sealed record InvoiceRequest(string InvoiceId, string Source);
internal sealed record RawInvoice(string InvoiceId, string Body);
internal sealed record ParsedInvoice(string InvoiceId, decimal Total, string Currency);
internal sealed record Classification(string Category, double Confidence);
internal sealed record ValidatedInvoice(string InvoiceId, decimal Total, string Category);

/// <summary>Fails the first call only: stands in for a flaky upstream.</summary>
internal sealed class FlakyOnce
{
    private int _calls;

    public bool ShouldFail() => Interlocked.Increment(ref _calls) == 1;
}

internal sealed class FetchInvoice : INodeHandler<InvoiceRequest, RawInvoice>
{
    public async ValueTask<RawInvoice> ExecuteAsync(InvoiceRequest input, NodeContext context, CancellationToken cancellationToken)
    {
        await Task.Delay(120, cancellationToken);
        return new RawInvoice(input.InvoiceId, "ACME GmbH;total=1249.90;EUR");
    }
}

internal sealed class ParseInvoice(FlakyOnce flaky) : INodeHandler<RawInvoice, ParsedInvoice>
{
    public async ValueTask<ParsedInvoice> ExecuteAsync(RawInvoice input, NodeContext context, CancellationToken cancellationToken)
    {
        context.ReportProgress(10, "reading");
        await Task.Delay(80, cancellationToken);
        if (flaky.ShouldFail())
        {
            throw new TimeoutException("OCR service timed out");
        }

        var parts = input.Body.Split(';');
        return new ParsedInvoice(input.InvoiceId, decimal.Parse(parts[1]["total=".Length..], System.Globalization.CultureInfo.InvariantCulture), parts[2]);
    }
}

internal sealed class ClassifyInvoice : INodeHandler<RawInvoice, Classification>
{
    public async ValueTask<Classification> ExecuteAsync(RawInvoice input, NodeContext context, CancellationToken cancellationToken)
    {
        await Task.Delay(150, cancellationToken);
        return new Classification("supplies", 0.93);
    }
}

internal sealed class ValidateInvoice : INodeHandler<JsonElement, ValidatedInvoice>
{
    public async ValueTask<ValidatedInvoice> ExecuteAsync(JsonElement input, NodeContext context, CancellationToken cancellationToken)
    {
        // A node with several parents gets an object of their outputs by node id.
        var parsed = input.GetProperty("parse").Deserialize<ParsedInvoice>(JsonSerializerOptions.Web)!;
        var category = input.GetProperty("classify").Deserialize<Classification>(JsonSerializerOptions.Web)!;
        await Task.Delay(40, cancellationToken);
        if (parsed.Total <= 0)
        {
            throw new PermanentNodeException($"Invoice {parsed.InvoiceId} has a non-positive total.");
        }

        return new ValidatedInvoice(parsed.InvoiceId, parsed.Total, category.Category);
    }
}

internal sealed class StoreInvoice : INodeHandler<ValidatedInvoice, object>
{
    public async ValueTask<object> ExecuteAsync(ValidatedInvoice input, NodeContext context, CancellationToken cancellationToken)
    {
        await Task.Delay(60, cancellationToken);
        return new { Stored = input.InvoiceId, input.Total, input.Category, Key = context.IdempotencyKey };
    }
}
