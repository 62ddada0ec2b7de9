<?xml version="1.0" encoding="UTF-8"?>
<!--
  reservation v2 -> v1 (urn:gembus:reservation:v2 -> urn:gembus:reservation:v1).

  Applied by bus/transform.py to one SOAP Body child: a v2 request on its way to a CLM that
  implements v1, or a v2 CLM's response on its way back to a v1 requester. Faults are never
  transformed (their detail, cmn:gembusFault, is the same in both versions).

  - ReserveEvse: customer/contractId and customer/token move back to the top level;
    durationMinutes becomes requestedExpiry = requestedStart (absent: now, the gateway's
    clock) + durationMinutes.
  - ReserveEvseResponse: grantedMinutes becomes expiry = start + grantedMinutes, in start's
    UTC offset.
  - Every other element (CancelReservation, CancelReservationResponse, the children above)
    keeps its local name and moves to the v1 namespace; elements of other namespaces
    (cmn:TokenType's children) are copied unchanged.

  Nothing in v2 is out of v1's range, so this direction never refuses. Only EXSLT
  dates-and-times is used (built into libxslt); the stylesheet reads no documents and runs
  with XSLTAccessControl.DENY_ALL.
-->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:date="http://exslt.org/dates-and-times"
    xmlns:v2="urn:gembus:reservation:v2"
    xmlns:r="urn:gembus:reservation:v1"
    extension-element-prefixes="date"
    exclude-result-prefixes="v2 date">

  <xsl:output method="xml" encoding="UTF-8"/>
  <!-- Whitespace-only text (indentation) is dropped. Not with xsl:strip-space: libxslt strips
       the input tree in place, and the input is a subtree of the request lxml must free. -->
  <xsl:template match="text()[not(normalize-space())]"/>

  <!-- Default: a v2 element becomes the v1 element of the same local name. -->
  <xsl:template match="v2:*">
    <xsl:element name="r:{local-name()}" namespace="urn:gembus:reservation:v1">
      <xsl:copy-of select="@*"/>
      <xsl:apply-templates/>
    </xsl:element>
  </xsl:template>

  <!-- Elements of other namespaces: rebuilt without the v2 namespace declarations in scope. -->
  <xsl:template match="*">
    <xsl:element name="{name()}" namespace="{namespace-uri()}">
      <xsl:copy-of select="@*"/>
      <xsl:apply-templates/>
    </xsl:element>
  </xsl:template>

  <xsl:template match="v2:ReserveEvse">
    <xsl:variable name="start">
      <xsl:choose>
        <xsl:when test="v2:requestedStart"><xsl:value-of select="normalize-space(v2:requestedStart)"/></xsl:when>
        <xsl:otherwise><xsl:value-of select="date:date-time()"/></xsl:otherwise>
      </xsl:choose>
    </xsl:variable>
    <r:ReserveEvse xmlns:cmn="urn:gembus:common:v1">
      <xsl:apply-templates select="v2:providerId | v2:customer/v2:contractId | v2:customer/v2:token"/>
      <xsl:apply-templates select="v2:evseId | v2:partnerReservationId | v2:requestedStart"/>
      <r:requestedExpiry>
        <xsl:value-of select="date:add($start, date:duration(60 * v2:durationMinutes))"/>
      </r:requestedExpiry>
    </r:ReserveEvse>
  </xsl:template>

  <xsl:template match="v2:ReserveEvseResponse">
    <r:ReserveEvseResponse>
      <xsl:apply-templates select="v2:reservationId | v2:evseId | v2:partnerReservationId | v2:start"/>
      <r:expiry>
        <xsl:value-of select="date:add(normalize-space(v2:start), date:duration(60 * v2:grantedMinutes))"/>
      </r:expiry>
    </r:ReserveEvseResponse>
  </xsl:template>
</xsl:stylesheet>
