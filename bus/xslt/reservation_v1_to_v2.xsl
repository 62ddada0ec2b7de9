<?xml version="1.0" encoding="UTF-8"?>
<!--
  reservation v1 -> v2 (urn:gembus:reservation:v1 -> urn:gembus:reservation:v2).

  Applied by bus/transform.py to one SOAP Body child: a v1 request on its way to a CLM that
  implements v2, or a v1 CLM's response on its way back to a v2 requester. Faults are never
  transformed (their detail, cmn:gembusFault, is the same in both versions).

  - ReserveEvse: contractId and token move into customer; requestedExpiry becomes
    durationMinutes = whole minutes from requestedStart (absent: now, the gateway's clock)
    to requestedExpiry, rounded down so the CLM is never asked for more than the requester
    wanted; more than 1440 is capped to 1440 (the CLM may shorten a reservation anyway and
    answers the length it granted). Less than one minute is refused with
    Client.InvalidReservationPeriod, the fault the v1 contract declares for it.
  - ReserveEvseResponse: expiry becomes grantedMinutes = whole minutes from start to expiry
    (rounded down, capped to 1440); a grant shorter than one minute is the provider's error.
  - Every other element (CancelReservation, CancelReservationResponse, the children above)
    keeps its local name and moves to the v2 namespace; elements of other namespaces
    (cmn:TokenType's children) are copied unchanged.

  Refusals: <xsl:message terminate="yes"> with "code|field|message"; bus/transform.py turns
  it into the gembus fault of that code. Only EXSLT dates-and-times is used (built into
  libxslt); the stylesheet reads no documents and runs with XSLTAccessControl.DENY_ALL.
-->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:date="http://exslt.org/dates-and-times"
    xmlns:v1="urn:gembus:reservation:v1"
    xmlns:r="urn:gembus:reservation:v2"
    extension-element-prefixes="date"
    exclude-result-prefixes="v1 date">

  <xsl:output method="xml" encoding="UTF-8"/>
  <!-- Whitespace-only text (indentation) is dropped. Not with xsl:strip-space: libxslt strips
       the input tree in place, and the input is a subtree of the request lxml must free. -->
  <xsl:template match="text()[not(normalize-space())]"/>

  <!-- Default: a v1 element becomes the v2 element of the same local name. -->
  <xsl:template match="v1:*">
    <xsl:element name="r:{local-name()}" namespace="urn:gembus:reservation:v2">
      <xsl:copy-of select="@*"/>
      <xsl:apply-templates/>
    </xsl:element>
  </xsl:template>

  <!-- Elements of other namespaces: rebuilt without the v1 namespace declarations in scope. -->
  <xsl:template match="*">
    <xsl:element name="{name()}" namespace="{namespace-uri()}">
      <xsl:copy-of select="@*"/>
      <xsl:apply-templates/>
    </xsl:element>
  </xsl:template>

  <xsl:template match="v1:ReserveEvse">
    <xsl:variable name="start">
      <xsl:choose>
        <xsl:when test="v1:requestedStart"><xsl:value-of select="normalize-space(v1:requestedStart)"/></xsl:when>
        <xsl:otherwise><xsl:value-of select="date:date-time()"/></xsl:otherwise>
      </xsl:choose>
    </xsl:variable>
    <xsl:variable name="minutes"
        select="floor((date:seconds(normalize-space(v1:requestedExpiry)) - date:seconds($start)) div 60)"/>
    <xsl:if test="not($minutes &gt;= 1)">
      <xsl:message terminate="yes">Client.InvalidReservationPeriod|requestedExpiry|requestedExpiry must be at least one minute after requestedStart (or now)</xsl:message>
    </xsl:if>
    <r:ReserveEvse xmlns:cmn="urn:gembus:common:v1">
      <xsl:apply-templates select="v1:providerId"/>
      <r:customer>
        <xsl:apply-templates select="v1:contractId | v1:token"/>
      </r:customer>
      <xsl:apply-templates select="v1:evseId | v1:partnerReservationId | v1:requestedStart"/>
      <r:durationMinutes>
        <xsl:call-template name="at-most-a-day"><xsl:with-param name="minutes" select="$minutes"/></xsl:call-template>
      </r:durationMinutes>
    </r:ReserveEvse>
  </xsl:template>

  <xsl:template match="v1:ReserveEvseResponse">
    <xsl:variable name="minutes"
        select="floor((date:seconds(normalize-space(v1:expiry)) - date:seconds(normalize-space(v1:start))) div 60)"/>
    <xsl:if test="not($minutes &gt;= 1)">
      <xsl:message terminate="yes">Server.InvalidResponse|expiry|the provider granted a reservation shorter than one minute</xsl:message>
    </xsl:if>
    <r:ReserveEvseResponse>
      <xsl:apply-templates select="v1:reservationId | v1:evseId | v1:partnerReservationId | v1:start"/>
      <r:grantedMinutes>
        <xsl:call-template name="at-most-a-day"><xsl:with-param name="minutes" select="$minutes"/></xsl:call-template>
      </r:grantedMinutes>
    </r:ReserveEvseResponse>
  </xsl:template>

  <xsl:template name="at-most-a-day">
    <xsl:param name="minutes"/>
    <xsl:choose>
      <xsl:when test="$minutes &gt; 1440">1440</xsl:when>
      <xsl:otherwise><xsl:value-of select="$minutes"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>
</xsl:stylesheet>
