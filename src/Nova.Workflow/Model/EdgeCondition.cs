using System.Globalization;
using System.Text.Json;

namespace Nova.Workflow;

/// <summary>How a <see cref="JsonPathCondition"/> compares the value found at its path.</summary>
public enum ComparisonOperator
{
    /// <summary>The value equals the operand (numbers by value, strings ordinally, JSON otherwise by text).</summary>
    Equal,
    /// <summary>The value differs from the operand.</summary>
    NotEqual,
    /// <summary>Number or string greater than the operand.</summary>
    GreaterThan,
    /// <summary>Number or string greater than or equal to the operand.</summary>
    GreaterThanOrEqual,
    /// <summary>Number or string less than the operand.</summary>
    LessThan,
    /// <summary>Number or string less than or equal to the operand.</summary>
    LessThanOrEqual,
    /// <summary>The path exists and is not null.</summary>
    Exists,
    /// <summary>The path is missing or null.</summary>
    NotExists,
}

/// <summary>
/// A condition on an edge, evaluated on the source node's output. When it is false the branch
/// is not taken and the target counts the edge as skipped.
/// </summary>
public abstract class EdgeCondition
{
    private protected EdgeCondition()
    {
    }

    /// <summary>A condition written in C#. It cannot be saved to JSON.</summary>
    public static EdgeCondition When(Func<JsonElement?, bool> predicate, string? description = null)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        return new PredicateCondition(predicate, description);
    }

    /// <summary>A comparison on a JSON path of the output (<c>$.a.b[0]</c>); savable to JSON.</summary>
    public static JsonPathCondition Path(string path, ComparisonOperator op, object? value = null)
    {
        var operand = value is null ? (JsonElement?)null : value is JsonElement e ? e : JsonSerializer.SerializeToElement(value);
        return new JsonPathCondition(path, op, operand);
    }

    /// <summary>Evaluates the condition on the source node's output.</summary>
    public abstract bool Evaluate(JsonElement? output);
}

internal sealed class PredicateCondition(Func<JsonElement?, bool> predicate, string? description) : EdgeCondition
{
    public string? Description { get; } = description;

    public override bool Evaluate(JsonElement? output) => predicate(output);

    public override string ToString() => Description ?? "C# predicate";
}

/// <summary>A comparison of the value at a JSON path of the output with a constant.</summary>
public sealed class JsonPathCondition : EdgeCondition
{
    private readonly PathSegment[] _segments;

    /// <summary>Creates the condition; the path must start with <c>$</c>.</summary>
    /// <exception cref="ArgumentException">The path is not of the form <c>$.name[0].name</c>.</exception>
    public JsonPathCondition(string path, ComparisonOperator op, JsonElement? value)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        _segments = ParsePath(path);
        PathText = path;
        Operator = op;
        Value = value;
    }

    /// <summary>The JSON path, e.g. <c>$.invoice.total</c>.</summary>
    public string PathText { get; }

    /// <summary>The comparison.</summary>
    public ComparisonOperator Operator { get; }

    /// <summary>The constant compared with.</summary>
    public JsonElement? Value { get; }

    /// <inheritdoc />
    public override bool Evaluate(JsonElement? output)
    {
        JsonElement? found = output;
        foreach (var segment in _segments)
        {
            if (found is not { } current)
            {
                break;
            }

            found = segment.Name is not null
                ? current.ValueKind == JsonValueKind.Object && current.TryGetProperty(segment.Name, out var child) ? child : null
                : current.ValueKind == JsonValueKind.Array && segment.Index < current.GetArrayLength() ? current[segment.Index] : null;
        }

        var present = found is { ValueKind: not JsonValueKind.Null and not JsonValueKind.Undefined };
        return Operator switch
        {
            ComparisonOperator.Exists => present,
            ComparisonOperator.NotExists => !present,
            ComparisonOperator.Equal => Compare(found, Value) == 0,
            ComparisonOperator.NotEqual => Compare(found, Value) != 0,
            ComparisonOperator.GreaterThan => present && Compare(found, Value) is > 0 and not int.MaxValue,
            ComparisonOperator.GreaterThanOrEqual => present && Compare(found, Value) is >= 0 and not int.MaxValue,
            ComparisonOperator.LessThan => present && Compare(found, Value) < 0,
            ComparisonOperator.LessThanOrEqual => present && Compare(found, Value) <= 0,
            _ => false,
        };
    }

    /// <inheritdoc />
    public override string ToString() => $"{PathText} {Operator} {Value?.GetRawText() ?? "null"}";

    // int.MaxValue means "not comparable"; ordering operators treat it as false.
    private static int Compare(JsonElement? left, JsonElement? right)
    {
        var l = left is { ValueKind: not JsonValueKind.Undefined } a ? a : default;
        var r = right is { ValueKind: not JsonValueKind.Undefined } b ? b : default;
        var lNull = l.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null;
        var rNull = r.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null;
        if (lNull || rNull)
        {
            return lNull && rNull ? 0 : int.MaxValue;
        }

        if (l.ValueKind == JsonValueKind.Number && r.ValueKind == JsonValueKind.Number)
        {
            return l.GetDecimal().CompareTo(r.GetDecimal()) switch { < 0 => -1, > 0 => 1, _ => 0 };
        }

        if (l.ValueKind == JsonValueKind.String && r.ValueKind == JsonValueKind.String)
        {
            return Math.Sign(string.CompareOrdinal(l.GetString(), r.GetString()));
        }

        if (l.ValueKind is JsonValueKind.True or JsonValueKind.False && r.ValueKind is JsonValueKind.True or JsonValueKind.False)
        {
            return l.ValueKind == r.ValueKind ? 0 : int.MaxValue;
        }

        return JsonElement.DeepEquals(l, r) ? 0 : int.MaxValue;
    }

    private static PathSegment[] ParsePath(string path)
    {
        if (path[0] != '$')
        {
            throw new ArgumentException($"JSON path '{path}' must start with '$' (for example '$.invoice.total').", nameof(path));
        }

        var segments = new List<PathSegment>();
        var i = 1;
        while (i < path.Length)
        {
            if (path[i] == '.')
            {
                var start = ++i;
                while (i < path.Length && path[i] != '.' && path[i] != '[')
                {
                    i++;
                }

                if (i == start)
                {
                    throw new ArgumentException($"JSON path '{path}' has an empty property name at position {start}.", nameof(path));
                }

                segments.Add(new PathSegment(path[start..i], 0));
            }
            else if (path[i] == '[')
            {
                var close = path.IndexOf(']', i);
                if (close < 0 || !int.TryParse(path.AsSpan(i + 1, close - i - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var index))
                {
                    throw new ArgumentException($"JSON path '{path}' has a malformed index at position {i}; use [0], [1], ….", nameof(path));
                }

                segments.Add(new PathSegment(null, index));
                i = close + 1;
            }
            else
            {
                throw new ArgumentException($"JSON path '{path}' is malformed at position {i}; use $.name[0].name.", nameof(path));
            }
        }

        return [.. segments];
    }

    private readonly record struct PathSegment(string? Name, int Index);
}
